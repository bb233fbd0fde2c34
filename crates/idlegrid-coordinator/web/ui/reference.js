// API reference rendered from the coordinator's /openapi.json, resolving `$ref`s.

import { openapi } from './api.js';
import { alertSlot, h, heading } from './dom.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

export async function referenceView(main, [kind, name]) {
  main.append(heading('API reference'));
  const alerts = alertSlot();
  const loading = h('p', { class: 'muted' }, 'Loading /openapi.json…');
  main.append(alerts.el, loading);
  let doc;
  try {
    doc = asProse(await openapi());
  } catch (e) {
    loading.remove();
    alerts.show(e, 'The API description could not be loaded');
    return;
  }
  loading.remove();
  main.append(render(doc));
  if (kind && name) {
    const target = document.getElementById(`${kind === 'schemas' ? 'schema' : 'tag'}-${slug(decodeURIComponent(name))}`);
    if (target) {
      target.scrollIntoView();
      target.focus();
    }
  }
}

function slug(text) {
  return String(text).replace(/[^A-Za-z0-9_-]+/g, '-');
}

function refName(ref) {
  return decodeURIComponent(String(ref).split('/').pop());
}

function resolve(doc, schema) {
  let s = schema;
  const seen = new Set();
  while (s && s.$ref && !seen.has(s.$ref)) {
    seen.add(s.$ref);
    const path = s.$ref.replace(/^#\//, '').split('/').map((p) => decodeURIComponent(p.replace(/~1/g, '/').replace(/~0/g, '~')));
    s = path.reduce((node, key) => (node ? node[key] : undefined), doc);
  }
  return s || {};
}

function render(doc) {
  const info = doc.info || {};
  const paths = doc.paths || {};
  const byTag = new Map();
  for (const t of doc.tags || []) byTag.set(t.name, { tag: t, ops: [] });
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tagName = (op.tags && op.tags[0]) || 'Other';
      if (!byTag.has(tagName)) byTag.set(tagName, { tag: { name: tagName }, ops: [] });
      byTag.get(tagName).ops.push({ path, method, op, shared: item.parameters || [] });
    }
  }
  const groups = [...byTag.values()].filter((g) => g.ops.length);
  const schemas = Object.entries((doc.components && doc.components.schemas) || {}).sort(([a], [b]) => a.localeCompare(b));

  const toc = h('nav', { class: 'toc card', 'aria-label': 'Reference contents' },
    h('h2', {}, 'Contents'),
    h('ul', {}, groups.map((g) => h('li', {}, h('a', { href: `#/api/tags/${encodeURIComponent(g.tag.name)}` }, g.tag.name),
      ` (${g.ops.length})`)),
    schemas.length ? h('li', {}, h('a', { href: '#/api/tags/schemas' }, 'Schemas'), ` (${schemas.length})`) : null));

  return h('div', { class: 'reference' },
    h('p', { class: 'lead' }, `${info.title || 'API'} ${info.version ? `version ${info.version}` : ''} · OpenAPI ${doc.openapi || ''}`),
    info.description ? h('p', {}, info.description) : null,
    h('p', { class: 'muted' }, 'Every call takes ', h('code', {}, 'Authorization: Bearer <secret>'),
      ' unless marked otherwise; errors are ', h('code', {}, '{"error": {"code", "message"}}'), '. The raw document: ',
      h('a', { href: '/openapi.json' }, '/openapi.json'), '.'),
    toc,
    groups.map((g) => h('section', { class: 'tag-group', 'aria-labelledby': `tag-${slug(g.tag.name)}` },
      h('h2', { id: `tag-${slug(g.tag.name)}`, tabindex: '-1' }, g.tag.name),
      g.tag.description ? h('p', {}, g.tag.description) : null,
      g.ops.map((o) => operation(doc, o)))),
    schemas.length ? h('section', { class: 'schemas', 'aria-labelledby': 'tag-schemas' },
      h('h2', { id: 'tag-schemas', tabindex: '-1' }, 'Schemas'),
      schemas.map(([name, schema]) => h('section', { class: 'schema card', dataset: { schema: name } },
        h('h3', { id: `schema-${slug(name)}`, tabindex: '-1' }, name),
        schemaBody(doc, schema)))) : null);
}

function operation(doc, { path, method, op, shared }) {
  const params = [...shared, ...(op.parameters || [])].map((p) => resolve(doc, p));
  const needsAuth = op.security ? op.security.length > 0 && op.security.some((s) => Object.keys(s).length) : Boolean(doc.security && doc.security.length);
  const body = op.requestBody ? resolve(doc, op.requestBody) : null;
  return h('article', { class: 'op card', dataset: { method, path } },
    h('h3', {}, h('span', { class: `method method-${method}` }, method.toUpperCase()), ' ', h('code', { class: 'path' }, path)),
    op.summary ? h('p', { class: 'summary' }, op.summary) : null,
    op.description && op.description !== op.summary ? h('p', { class: 'description' }, op.description) : null,
    !needsAuth ? h('p', { class: 'muted small' }, 'No Authorization needed.') : null,
    params.length ? [h('h4', {}, 'Parameters'), h('div', { class: 'table-wrap' }, h('table', { class: 'params' },
      h('thead', {}, h('tr', {}, ['Name', 'In', 'Type', 'Required', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, params.map((p) => h('tr', {},
        h('td', {}, h('code', {}, p.name)), h('td', {}, p.in), h('td', {}, typeOf(doc, p.schema || {})),
        h('td', {}, p.required ? 'yes' : 'no'), h('td', {}, p.description || '')))))) ] : null,
    body ? [h('h4', {}, 'Request body'), body.description ? h('p', {}, body.description) : null,
      content(doc, body.content, body.required)] : null,
    op.responses ? [h('h4', {}, 'Responses'), h('dl', { class: 'responses' },
      Object.entries(op.responses).map(([status, r]) => {
        const resp = resolve(doc, r);
        return [h('dt', {}, h('code', { class: `status status-${String(status)[0]}xx` }, status)),
          h('dd', {}, resp.description || '', content(doc, resp.content))];
      }))] : null);
}

function content(doc, c, required) {
  if (!c) return null;
  return Object.entries(c).map(([type, media]) => h('div', { class: 'media' },
    h('p', { class: 'small' }, h('code', {}, type), required ? ' (required)' : '',
      media.schema ? [': ', typeOf(doc, media.schema)] : null),
    media.schema ? schemaBody(doc, media.schema, true) : null));
}

/** A short description of a schema's type, with links to named schemas. */
function typeOf(doc, schema) {
  if (!schema || typeof schema !== 'object') return 'any';
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return h('a', { href: `#/api/schemas/${encodeURIComponent(name)}`, class: 'ref' }, name);
  }
  const alts = schema.oneOf || schema.anyOf;
  if (alts) return join(alts.map((s) => typeOf(doc, s)), ' or ');
  if (schema.allOf) return join(schema.allOf.map((s) => typeOf(doc, s)), ' and ');
  let types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const nullable = types.includes('null') || schema.nullable;
  types = types.filter((t) => t !== 'null');
  const parts = types.map((t) => {
    if (t === 'array') return ['array of ', typeOf(doc, schema.items || {})];
    if (t === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') return ['map of ', typeOf(doc, schema.additionalProperties)];
    return schema.format ? `${t} (${schema.format})` : t;
  });
  const out = [];
  if (schema.enum) out.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`);
  else if (parts.length) out.push(join(parts, ' or '));
  else if (schema.const !== undefined) out.push(JSON.stringify(schema.const));
  else out.push(types.length ? '' : 'any');
  if (nullable) out.push(' or null');
  return h('span', { class: 'type' }, out);
}

/**
 * A copy of the document whose descriptions and summaries are prose on one line: doc comments
 * wrap their lines, and the page shows every string with its line breaks escaped.
 */
function asProse(value, key) {
  if (typeof value === 'string') return key === 'description' || key === 'summary' ? value.replace(/\s+/g, ' ').trim() : value;
  if (Array.isArray(value)) return value.map((item) => asProse(item));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asProse(v, k)]));
  }
  return value;
}

function join(items, sep) {
  return items.flatMap((item, i) => (i ? [sep, item] : [item]));
}

/** The fields of an object schema (resolving a `$ref` at the top), or its variants / values. */
function schemaBody(doc, schema, inline = false) {
  const s = resolve(doc, schema);
  const out = [];
  if (!inline && s.description) out.push(h('p', {}, s.description));
  if (inline && schema.$ref && s.description) out.push(h('p', { class: 'muted small' }, s.description));
  if (s.enum) out.push(h('p', {}, 'Values: ', join(s.enum.map((v) => h('code', {}, JSON.stringify(v))), ', ')));
  const alts = s.oneOf || s.anyOf;
  if (alts) {
    out.push(h('p', {}, 'One of:'), h('ul', { class: 'variants' }, alts.map((a) => {
      const r = resolve(doc, a);
      return h('li', {}, typeOf(doc, a), r.description ? ` — ${r.description}` : '', r.properties && !a.$ref ? fieldsTable(doc, r) : null);
    })));
  }
  if (s.allOf) for (const part of s.allOf) out.push(schemaBody(doc, part, true));
  if (s.properties) out.push(fieldsTable(doc, s));
  if (!inline && s.type === 'array' && s.items) out.push(h('p', {}, 'Items: ', typeOf(doc, s.items)));
  return out;
}

function fieldsTable(doc, s) {
  const required = new Set(s.required || []);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'fields' },
    h('thead', {}, h('tr', {}, ['Field', 'Type', 'Required', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, Object.entries(s.properties).map(([name, prop]) => {
      const resolved = prop.$ref ? resolve(doc, prop) : prop;
      const desc = prop.description || (prop.$ref ? '' : resolved.description) || '';
      return h('tr', {}, h('td', {}, h('code', {}, name)), h('td', {}, typeOf(doc, prop)),
        h('td', {}, required.has(name) ? 'yes' : 'no'), h('td', {}, desc));
    }))));
}
