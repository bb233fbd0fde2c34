// Reading the coordinator's OpenAPI document: following `$ref`s, and a made-up value of a
// schema's shape, for the examples of the API reference.

/** The schema, parameter or response a `$ref` points at (followed until it is not one). */
export function resolve(doc, schema) {
  let s = schema;
  const seen = new Set();
  while (s && s.$ref && !seen.has(s.$ref)) {
    seen.add(s.$ref);
    const path = s.$ref.replace(/^#\//, '').split('/').map((p) => decodeURIComponent(p.replace(/~1/g, '/').replace(/~0/g, '~')));
    s = path.reduce((node, key) => (node ? node[key] : undefined), doc);
  }
  return s || {};
}

/** Nesting past which an example stops (schemas may refer to themselves). */
const MAX_DEPTH = 6;

/** A placeholder string for a string schema of this format. */
const FORMATS = { 'date-time': '2025-01-01T00:00:00Z', date: '2025-01-01', uri: 'https://example.com/', url: 'https://example.com/', email: 'name@example.com' };

/**
 * A value of the schema's shape: its `example`, `default`, constant or first allowed value where
 * the document gives one, else a placeholder of its type. An object has its required fields
 * (at the top, every field when none is required); an array one item; an alternative its first
 * non-null one.
 */
export function exampleOf(doc, schema, depth = 0) {
  const s = resolve(doc, schema);
  if (depth > MAX_DEPTH) return null;
  if (s.example !== undefined) return s.example;
  if (Array.isArray(s.examples) && s.examples.length) return s.examples[0];
  if (s.default !== undefined && s.default !== null) return s.default;
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum) && s.enum.length) return s.enum.find((v) => v !== null) ?? null;
  const alts = s.oneOf || s.anyOf;
  if (alts) {
    const chosen = alts.find((a) => resolve(doc, a).type !== 'null') || alts[0];
    return chosen ? exampleOf(doc, chosen, depth + 1) : null;
  }
  if (s.allOf) return Object.assign({}, ...s.allOf.map((part) => exampleOf(doc, part, depth + 1)));
  const types = (Array.isArray(s.type) ? s.type : [s.type]).filter((t) => t && t !== 'null');
  const type = types[0] || (s.properties ? 'object' : null);
  switch (type) {
    case 'object': {
      const props = s.properties || {};
      const required = (s.required || []).filter((name) => Object.hasOwn(props, name));
      // Nothing required: every field of the body itself, none of a nested object (its defaults).
      const names = required.length || depth === 0 ? (required.length ? required : Object.keys(props)) : [];
      return Object.fromEntries(names.map((name) => [name, exampleOf(doc, props[name], depth + 1)]));
    }
    case 'array': return [exampleOf(doc, s.items || {}, depth + 1)];
    case 'integer': return Math.max(1, Number.isFinite(s.minimum) ? s.minimum : 1);
    case 'number': return Number.isFinite(s.minimum) && s.minimum > 1 ? s.minimum : 1.0;
    case 'boolean': return false;
    case 'string': return FORMATS[s.format] || 'string';
    default: return null;
  }
}
