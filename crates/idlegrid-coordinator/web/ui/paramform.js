// A published app's parameters as form fields: one field per top-level property of the JSON
// Schema its manifest gives as `parameters`, for the new-job form (newjob.js).
//
// Only what the fields can say and check is shown as fields: an object schema whose properties
// are each a boolean (a checkbox), an integer or a number (a number field with its range), a
// string (a text field), a choice among `enum` values (a select) or an array of strings or
// numbers (a text field of values separated by commas). Anything else — nested objects,
// `oneOf`, `$ref`, a keyword not known here, more than MAX_PARAM_FIELDS properties — is left
// to the JSON textarea (`planParams` answers null). The coordinator checks the parameters
// against the schema all the same, and its word is the last.
//
// Everything in the schema (property names, descriptions, enum values) is its publisher's: it
// is shown as text (`h`), and a name is only ever a key of the parameters, never an element's
// name or id.

import { field, h, uid } from './dom.js';

/** Most properties shown as fields; an app with more is given its parameters as JSON. */
export const MAX_PARAM_FIELDS = 50;

/** A field's value that cannot be sent, with the control to fix (the form focuses it). */
export class FieldError extends Error {
  constructor(control, message) { super(message); this.control = control; }
}

/** Keywords that only describe (the fields need not check them). */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$comment', 'deprecated', 'readOnly', 'writeOnly']);
const TOP_KEYWORDS = new Set([...ANNOTATIONS, '$schema', '$id', 'type', 'properties', 'required', 'additionalProperties']);
const NUMBER_KEYWORDS = ['type', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'];
const STRING_KEYWORDS = ['type', 'minLength', 'maxLength', 'pattern'];
const ARRAY_KEYWORDS = ['type', 'items', 'minItems', 'maxItems', 'uniqueItems'];
/** Longest pattern the page checks itself (a longer one is left to the coordinator). */
const MAX_CHECKED_PATTERN = 200;

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isScalar = (v) => v === null || ['string', 'number', 'boolean'].includes(typeof v);
const isCount = (v) => Number.isInteger(v) && v >= 0;
/** Whether `schema` has no keyword but `allowed` and annotations. */
const only = (schema, allowed) => Object.keys(schema).every((k) => allowed.includes(k) || ANNOTATIONS.has(k));

/**
 * The fields a `parameters` schema is filled in by, one per property (the required ones first,
 * then the others, in the schema's order), or null when fields cannot express it (the parameters are then written as JSON). `{}` of
 * properties with no others allowed: no field (the app takes no parameters).
 */
export function planParams(schema) {
  if (!isObject(schema) || !Object.keys(schema).every((k) => TOP_KEYWORDS.has(k))) return null;
  if (schema.type !== undefined && schema.type !== 'object') return null;
  if (!isObject(schema.properties)) return null;
  const others = schema.additionalProperties;
  // Others allowed by a schema of their own: only JSON says them.
  if (others !== undefined && typeof others !== 'boolean') return null;
  const required = schema.required === undefined ? [] : schema.required;
  if (!Array.isArray(required) || !required.every((r) => typeof r === 'string' && Object.hasOwn(schema.properties, r))) return null;
  const entries = Object.entries(schema.properties);
  if (entries.length > MAX_PARAM_FIELDS) return null;
  // No property, yet any allowed: nothing to show as fields.
  if (!entries.length && others !== false) return null;
  const specs = [];
  for (const [name, property] of entries) {
    const spec = planProperty(name, property, required.includes(name));
    if (!spec) return null;
    specs.push(spec);
  }
  // The required ones first (the coordinator serves the properties sorted by name).
  return [...specs.filter((s) => s.required), ...specs.filter((s) => !s.required)];
}

/** One property's field: { name, kind, required, description, … its checks }, or null. */
function planProperty(name, schema, required) {
  if (!isObject(schema)) return null;
  const spec = { name, required, description: typeof schema.description === 'string' ? schema.description : '', default: schema.default };
  if (schema.enum !== undefined) {
    if (!only(schema, ['enum', 'type'])) return null;
    if (schema.type !== undefined && !['string', 'integer', 'number', 'boolean'].includes(schema.type)) return null;
    if (!Array.isArray(schema.enum) || !schema.enum.length || !schema.enum.every(isScalar)) return null;
    return { ...spec, kind: 'enum', values: schema.enum };
  }
  switch (schema.type) {
    case 'boolean':
      return only(schema, ['type']) ? { ...spec, kind: 'boolean' } : null;
    case 'integer':
    case 'number': {
      const checks = numberChecks(schema);
      return checks && { ...spec, kind: schema.type, ...checks };
    }
    case 'string': {
      const checks = stringChecks(schema);
      return checks && { ...spec, kind: 'string', ...checks };
    }
    case 'array': {
      if (!only(schema, ARRAY_KEYWORDS) || !isObject(schema.items)) return null;
      const { minItems = 0, maxItems = null, uniqueItems = false } = schema;
      if (!isCount(minItems) || (maxItems !== null && !isCount(maxItems)) || typeof uniqueItems !== 'boolean') return null;
      const items = schema.items;
      let item = null;
      if (items.type === 'string' && items.enum === undefined) item = stringChecks(items) && { kind: 'string', ...stringChecks(items) };
      else if ((items.type === 'integer' || items.type === 'number') && items.enum === undefined) item = numberChecks(items) && { kind: items.type, ...numberChecks(items) };
      return item && { ...spec, kind: 'list', item, minItems, maxItems, uniqueItems };
    }
    default:
      return null;
  }
}

function numberChecks(schema) {
  if (!only(schema, NUMBER_KEYWORDS)) return null;
  const checks = {};
  for (const key of NUMBER_KEYWORDS.slice(1)) {
    if (schema[key] === undefined) continue;
    if (typeof schema[key] !== 'number' || !Number.isFinite(schema[key])) return null;
    checks[key] = schema[key];
  }
  if (checks.multipleOf !== undefined && !(checks.multipleOf > 0)) return null;
  return checks;
}

function stringChecks(schema) {
  if (!only(schema, STRING_KEYWORDS)) return null;
  const { minLength = 0, maxLength = null, pattern = null } = schema;
  if (!isCount(minLength) || (maxLength !== null && !isCount(maxLength)) || (pattern !== null && typeof pattern !== 'string')) return null;
  return { minLength, maxLength, pattern, regex: checkedPattern(pattern) };
}

/**
 * The pattern as a RegExp the page checks values with (searched for, as JSON Schema does),
 * when it is simple: short, valid here, without backreferences or a repeated group (whose
 * backtracking could hang the page). Null for none: the coordinator checks it.
 */
function checkedPattern(pattern) {
  if (pattern === null || pattern.length > MAX_CHECKED_PATTERN) return null;
  if (/\\[1-9k]/.test(pattern) || /\)[*+?{]/.test(pattern)) return null;
  try {
    return new RegExp(pattern, 'u');
  } catch {
    return null;
  }
}

/** A property's name in a message: as given, cut short when very long. */
export function paramName(name) {
  const chars = [...name];
  return `“${chars.length > 60 ? `${chars.slice(0, 59).join('')}…` : name}”`;
}

/** What a number may be, in words: "from 16 to 4096", "at least 1", "more than 0", or ''. */
function range(spec) {
  const low = spec.exclusiveMinimum !== undefined && (spec.minimum === undefined || spec.exclusiveMinimum >= spec.minimum)
    ? `more than ${spec.exclusiveMinimum}` : spec.minimum !== undefined ? `at least ${spec.minimum}` : '';
  const high = spec.exclusiveMaximum !== undefined && (spec.maximum === undefined || spec.exclusiveMaximum <= spec.maximum)
    ? `less than ${spec.exclusiveMaximum}` : spec.maximum !== undefined ? `at most ${spec.maximum}` : '';
  if (low.startsWith('at least') && high.startsWith('at most')) return `from ${spec.minimum} to ${spec.maximum}`;
  return [low, high].filter(Boolean).join(' and ');
}

/** What a number must be: "a whole number from 16 to 4096", "a number more than 0, a multiple of 0.5". */
function numberWords(spec) {
  const within = range(spec);
  return `${spec.kind === 'integer' ? 'a whole number' : 'a number'}${within ? ` ${within}` : ''}`
    + `${spec.multipleOf !== undefined ? `, a multiple of ${spec.multipleOf}` : ''}`;
}

/** Whether `n` fits the number's checks. */
function numberFits(spec, n) {
  if (!Number.isFinite(n) || (spec.kind === 'integer' && !Number.isInteger(n))) return false;
  if (spec.minimum !== undefined && n < spec.minimum) return false;
  if (spec.maximum !== undefined && n > spec.maximum) return false;
  if (spec.exclusiveMinimum !== undefined && n <= spec.exclusiveMinimum) return false;
  if (spec.exclusiveMaximum !== undefined && n >= spec.exclusiveMaximum) return false;
  if (spec.multipleOf !== undefined) {
    const q = n / spec.multipleOf;
    if (Math.abs(q - Math.round(q)) > 1e-9 * Math.max(1, Math.abs(q))) return false;
  }
  return true;
}

/** What is wrong with a text by the string checks, as the end of a sentence; null when nothing. */
function stringProblem(spec, text) {
  const length = [...text].length;
  if (length < spec.minLength) return `must be at least ${spec.minLength} character${spec.minLength === 1 ? '' : 's'} long`;
  if (spec.maxLength !== null && length > spec.maxLength) return `must be at most ${spec.maxLength} character${spec.maxLength === 1 ? '' : 's'} long`;
  if (spec.regex && !spec.regex.test(text)) return `must match the pattern ${spec.pattern}`;
  return null;
}

/**
 * How many (characters, values) there may be, for a hint: "From 2 to 5 characters.", "At most
 * 1 value."; '' when any number will do (at least 1 goes without saying: empty is left out).
 */
function amount(low, high, one) {
  const many = (n) => `${n} ${n === 1 ? one : `${one}s`}`;
  if (low > 1 && high !== null) return `From ${low} to ${many(high)}.`;
  if (low > 1) return `At least ${many(low)}.`;
  if (high !== null) return `At most ${many(high)}.`;
  return '';
}

const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** An enum value as a choice shows it. */
function choiceText(value) {
  if (typeof value === 'string') return value === '' ? '(empty text)' : value;
  return JSON.stringify(value);
}

/** Sets `obj[name] = value` as an own property, whatever the name (`__proto__` too). */
function put(obj, name, value) {
  Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * The fields of `specs` (from `planParams`): { el, controls, read(), peek(), fill(params) },
 * each control's `data-param` its property's name. `read` gives the parameters the fields
 * hold, checked (a FieldError naming the field to fix), the empty ones left out; `peek` the
 * same unchecked, for the JSON textarea; `fill` sets the fields from parameters, or says why
 * they cannot hold them.
 */
export function paramFields(specs) {
  const fields = specs.map(paramField);
  const required = specs.some((s) => s.required);
  const intro = !specs.length ? 'This app takes no parameters.'
    : `Leave a field empty for the app’s default.${required ? ' Fields marked “required” must be filled in.' : ''}`;
  const el = h('div', { class: 'param-fields' }, h('p', { class: 'hint param-intro' }, intro), fields.map((f) => f.wrap));
  const gather = (strict) => {
    const params = {};
    for (const f of fields) {
      const taken = f.read(strict);
      if (taken) put(params, f.spec.name, taken.value);
    }
    return params;
  };
  return {
    el,
    controls: fields.map((f) => f.control),
    read: () => gather(true),
    peek: () => gather(false),
    /** Sets the fields from `params`; returns why it cannot (nothing changed then), or null. */
    fill(params) {
      const unknown = Object.keys(params).find((k) => !fields.some((f) => f.spec.name === k));
      if (unknown !== undefined) return `${paramName(unknown)} is not one of the app’s parameters.`;
      for (const f of fields) {
        if (!Object.hasOwn(params, f.spec.name)) continue;
        const problem = f.fits(params[f.spec.name]);
        if (problem) return `${paramName(f.spec.name)} ${problem}.`;
      }
      for (const f of fields) f.write(Object.hasOwn(params, f.spec.name) ? params[f.spec.name] : undefined);
      return null;
    },
  };
}

/** One property's field: { spec, wrap, control, read(strict), fits(value), write(value) }. */
function paramField(spec) {
  const id = uid('param');
  const label = [spec.name, spec.required ? h('span', { class: 'required-mark' }, ' (required)') : null];
  const hintText = (facts) => [spec.description, facts].filter(Boolean).join(' ');
  const required = spec.required ? { 'aria-required': 'true' } : {};
  const named = paramName(spec.name);
  const make = {
    boolean() {
      // Sent when it differs from the default (false unless the schema says), or when required.
      const usual = spec.default === true;
      const control = h('input', { type: 'checkbox', id, checked: usual, dataset: { param: spec.name }, ...required });
      const hint = hintText(typeof spec.default === 'boolean' && !spec.required ? `Default: ${usual ? 'on' : 'off'}.` : '');
      if (hint) control.setAttribute('aria-describedby', `${id}-hint`);
      const wrap = h('div', { class: 'param param-boolean' },
        h('div', { class: 'field check' }, control, h('label', { for: id }, label)),
        hint ? h('p', { class: 'hint field-after', id: `${id}-hint` }, hint) : null);
      return {
        wrap, control,
        read: () => (spec.required || control.checked !== usual ? { value: control.checked } : null),
        fits: (v) => (typeof v === 'boolean' ? null : 'must be true or false for its checkbox'),
        write: (v) => { control.checked = v === undefined ? usual : v; },
      };
    },
    number() {
      const control = h('input', {
        type: 'number', id, dataset: { param: spec.name }, ...required,
        min: spec.minimum, max: spec.maximum,
        step: spec.multipleOf !== undefined ? spec.multipleOf : spec.kind === 'integer' ? 1 : 'any',
        // Phones' number pads without a minus sign only where no number below 0 fits.
        inputmode: spec.minimum !== undefined && spec.minimum >= 0 ? (spec.kind === 'integer' ? 'numeric' : 'decimal') : null,
        placeholder: typeof spec.default === 'number' ? `default ${spec.default}` : 'default',
      });
      const words = numberWords(spec);
      return {
        wrap: field(label, control, hintText(`${words[0].toUpperCase()}${words.slice(1)}.`)).wrap,
        control,
        read(strict) {
          // A number field holds '' for text that is no number, as for nothing typed.
          if (control.validity.badInput) {
            if (strict) throw new FieldError(control, `${named} must be ${words}.`);
            return null;
          }
          if (control.value === '') {
            if (strict && spec.required) throw new FieldError(control, `${named} is required: write ${words}.`);
            return null;
          }
          const n = Number(control.value);
          if (strict && !numberFits(spec, n)) throw new FieldError(control, `${named} must be ${words}.`);
          return { value: n };
        },
        fits: (v) => (typeof v === 'number' && Number.isFinite(v) ? null : 'must be a number for its field'),
        write: (v) => { control.value = v === undefined ? '' : String(v); },
      };
    },
    enum() {
      const usual = spec.values.findIndex((v) => v === spec.default);
      // Optional: an empty choice for the app's default. Required: a choice to make, unless
      // the schema names a default.
      const empty = spec.required ? (usual >= 0 ? null : 'Choose one') : usual >= 0 ? `Default (${choiceText(spec.default)})` : 'Default';
      const control = h('select', { id, dataset: { param: spec.name }, ...required },
        empty === null ? null : h('option', { value: '' }, empty),
        spec.values.map((v, i) => h('option', { value: String(i) }, choiceText(v))));
      const initial = spec.required && usual >= 0 ? String(usual) : '';
      control.value = initial;
      return {
        wrap: field(label, control, hintText('')).wrap,
        control,
        read(strict) {
          if (control.value === '') {
            if (strict && spec.required) throw new FieldError(control, `${named} is required: choose one of its values.`);
            return null;
          }
          return { value: spec.values[Number(control.value)] };
        },
        fits: (v) => (spec.values.some((c) => c === v) ? null : 'is not one of its choices'),
        write: (v) => { control.value = v === undefined ? initial : String(spec.values.findIndex((c) => c === v)); },
      };
    },
    string() {
      const control = h('input', {
        type: 'text', id, dataset: { param: spec.name }, ...required, autocomplete: 'off', spellcheck: 'false',
        maxlength: spec.maxLength, placeholder: typeof spec.default === 'string' && spec.default ? `default ${spec.default}` : null,
      });
      return {
        wrap: field(label, control, hintText(amount(spec.minLength, spec.maxLength, 'character'))).wrap,
        control,
        read(strict) {
          if (control.value === '') {
            if (strict && spec.required) throw new FieldError(control, `${named} is required.`);
            return null;
          }
          const problem = strict && stringProblem(spec, control.value);
          if (problem) throw new FieldError(control, `${named} ${problem}.`);
          return { value: control.value };
        },
        fits: (v) => (typeof v !== 'string' ? 'must be a text for its field' : v === '' ? 'is empty, which its field leaves out' : null),
        write: (v) => { control.value = v === undefined ? '' : v; },
      };
    },
    list() {
      const { item } = spec;
      const numbers = item.kind !== 'string';
      const control = h('input', {
        type: 'text', id, dataset: { param: spec.name }, ...required, autocomplete: 'off', spellcheck: 'false',
        inputmode: numbers && item.minimum !== undefined && item.minimum >= 0 ? 'decimal' : null,
        placeholder: Array.isArray(spec.default) && spec.default.length ? `default ${spec.default.join(', ')}` : null,
      });
      const count = amount(spec.minItems, spec.maxItems, 'value');
      const what = numbers ? `Numbers (${numberWords(item)}), separated by commas` : 'Values separated by commas';
      return {
        wrap: field(label, control, hintText(`${what}, e.g. ${numbers ? '1, 2, 3' : 'a, b, c'}.${count ? ` ${count}` : ''}`)).wrap,
        control,
        read(strict) {
          const texts = control.value.split(',').map((t) => t.trim()).filter(Boolean);
          if (!texts.length) {
            if (strict && spec.required) throw new FieldError(control, `${named} is required: write its values, separated by commas.`);
            return null;
          }
          const values = [];
          for (const text of texts) {
            if (!numbers) {
              const problem = strict && stringProblem(item, text);
              if (problem) throw new FieldError(control, `${named}: each value ${problem}; “${text}” does not.`);
              values.push(text);
            } else if (!NUMBER_TEXT.test(text) || !numberFits(item, Number(text))) {
              if (strict) throw new FieldError(control, `${named}: each value must be ${numberWords(item)}; “${text}” is not.`);
            } else {
              values.push(Number(text));
            }
          }
          if (strict) {
            if (values.length < spec.minItems) throw new FieldError(control, `${named} needs at least ${spec.minItems} values, separated by commas.`);
            if (spec.maxItems !== null && values.length > spec.maxItems) throw new FieldError(control, `${named} takes at most ${spec.maxItems} value${spec.maxItems === 1 ? '' : 's'}.`);
            const twice = spec.uniqueItems ? values.find((v, i) => values.indexOf(v) !== i) : undefined;
            if (twice !== undefined) throw new FieldError(control, `${named} has “${twice}” twice: give each value once.`);
          }
          return values.length ? { value: values } : null;
        },
        fits(v) {
          if (!Array.isArray(v)) return 'must be a list for its field';
          if (!v.length) return 'is an empty list, which its field leaves out';
          const ok = numbers ? v.every((x) => typeof x === 'number' && Number.isFinite(x))
            : v.every((x) => typeof x === 'string' && x !== '' && x === x.trim() && !x.includes(','));
          return ok ? null : numbers ? 'must hold only numbers for its field' : 'holds a value its field cannot write (empty, with a comma, or with spaces around it)';
        },
        write: (v) => { control.value = v === undefined ? '' : v.map(String).join(', '); },
      };
    },
  };
  const kind = spec.kind === 'integer' ? 'number' : spec.kind;
  return { spec, ...make[kind]() };
}
