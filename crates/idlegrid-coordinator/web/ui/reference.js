// API reference rendered from the coordinator's /openapi.json, resolving `$ref`s.
//
// Short enough to read: endpoints are grouped by tag and closed until opened, each with its
// status codes in one line and a curl example; the errors every endpoint shares (their body and
// what each status means) are one table, which each endpoint's codes link to; schemas are closed
// too. Descriptions are Markdown (markdown.js: built as nodes, never as markup).

import { openapi } from './api.js';
import { alertSlot, h, heading, lines } from './dom.js';
import { markdown, markdownInline } from './markdown.js';
import { curlExample } from './curl.js';
import { exampleOf, resolve } from './openapi-schema.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Reason phrases of the error statuses, for a status no endpoint describes. */
const REASONS = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 410: 'Gone', 413: 'Content Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Content',
  429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable',
};

export async function referenceView(main, [kind, name]) {
  main.append(heading('API reference'));
  const alerts = alertSlot();
  const loading = h('p', { class: 'muted' }, 'Loading /openapi.json…');
  main.append(alerts.el, loading);
  let doc;
  try {
    doc = await openapi();
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
      // A schema's heading is inside its closed <details>: open it to show it.
      const closed = target.closest('details');
      if (closed) closed.open = true;
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

/** Markdown of a description, its rustdoc references to schemas linked. */
function prose(doc, text) {
  return text ? markdown(text, { reference: schemaHref(doc) }) : null;
}

function schemaHref(doc) {
  const schemas = (doc.components && doc.components.schemas) || {};
  // `ChunkState::Checking` is a value of the schema ChunkState.
  return (name) => {
    const found = name.split('::').reverse().find((part) => Object.hasOwn(schemas, part));
    return found ? `#/api/schemas/${encodeURIComponent(found)}` : null;
  };
}

/** Whether an answer's status is an error (4xx, 5xx). */
function isError(status) {
  return /^[45]/.test(status);
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
  const ops = groups.flatMap((g) => g.ops);
  const schemas = Object.entries((doc.components && doc.components.schemas) || {}).sort(([a], [b]) => a.localeCompare(b));
  const errorBody = errorBodyName(doc, ops);

  const toc = h('nav', { class: 'toc card', 'aria-label': 'Reference contents' },
    h('h2', {}, 'Contents'),
    h('ul', {}, groups.map((g) => h('li', {}, h('a', { href: `#/api/tags/${encodeURIComponent(g.tag.name)}` }, g.tag.name),
      ` (${g.ops.length})`)),
    h('li', {}, h('a', { href: '#/api/tags/errors' }, 'Errors')),
    schemas.length ? h('li', {}, h('a', { href: '#/api/tags/schemas' }, 'Schemas'), ` (${schemas.length})`) : null));

  return h('div', { class: 'reference' },
    h('p', { class: 'lead' }, `${info.title || 'API'} ${info.version ? `version ${info.version}` : ''} · OpenAPI ${doc.openapi || ''}`),
    prose(doc, info.description),
    h('p', { class: 'muted' }, 'Every call takes ', h('code', {}, 'Authorization: Bearer <secret>'),
      ' unless marked otherwise; the examples read the secret from a shell variable named after its kind. ',
      'Errors share one body', errorBody ? [', ', h('a', { href: `#/api/schemas/${encodeURIComponent(errorBody)}` }, errorBody)] : null,
      ': see ', h('a', { href: '#/api/tags/errors' }, 'Errors'), '. The raw document: ',
      h('a', { href: '/openapi.json' }, '/openapi.json'), '.'),
    toc,
    groups.map((g) => h('section', { class: 'tag-group', 'aria-labelledby': `tag-${slug(g.tag.name)}` },
      h('h2', { id: `tag-${slug(g.tag.name)}`, tabindex: '-1' }, g.tag.name),
      prose(doc, g.tag.description),
      g.ops.map((o) => operation(doc, o)))),
    errorsSection(doc, ops, errorBody),
    schemas.length ? h('section', { class: 'schemas', 'aria-labelledby': 'tag-schemas' },
      h('h2', { id: 'tag-schemas', tabindex: '-1' }, 'Schemas'),
      schemas.map(([name, schema]) => h('details', { class: 'schema card', dataset: { schema: name } },
        h('summary', {}, h('h3', { id: `schema-${slug(name)}`, tabindex: '-1' }, name)),
        schemaBody(doc, schema)))) : null);
}

/** The schema the endpoints' error answers have (named by their `$ref`), or null. */
function errorBodyName(doc, ops) {
  for (const { op } of ops) {
    for (const [status, r] of Object.entries(op.responses || {})) {
      const json = isError(status) && (resolve(doc, r).content || {})['application/json'];
      if (json && json.schema && json.schema.$ref) return refName(json.schema.$ref);
    }
  }
  return null;
}

/**
 * The errors, once for every endpoint: the body they share (the schema `errorBody`), and each
 * status with what the endpoints say it means there.
 */
function errorsSection(doc, ops, errorBody) {
  const meanings = new Map(); // status → Set of descriptions
  for (const { op } of ops) {
    for (const [status, r] of Object.entries(op.responses || {})) {
      if (!isError(status)) continue;
      if (!meanings.has(status)) meanings.set(status, new Set());
      const text = (resolve(doc, r).description || '').replace(/\s+/g, ' ').trim();
      if (text) meanings.get(status).add(text);
    }
  }
  const statuses = [...meanings.keys()].sort();
  const body = errorBody ? resolve(doc, { $ref: `#/components/schemas/${encodeURIComponent(errorBody)}` }) : null;
  // The body's one field (`error`), whose fields say what a code is.
  const fields = body && body.properties ? Object.values(body.properties).map((p) => resolve(doc, p)).find((p) => p.properties) : null;
  return h('section', { class: 'errors', 'aria-labelledby': 'tag-errors' },
    h('h2', { id: 'tag-errors', tabindex: '-1' }, 'Errors'),
    body ? [
      h('p', {}, 'Every 4xx and 5xx answer has this body (',
        h('a', { href: `#/api/schemas/${encodeURIComponent(errorBody)}` }, errorBody), '):'),
      h('pre', { class: 'code-block' }, lines(JSON.stringify(exampleOf(doc, body), null, 2))),
      fields ? fieldsTable(doc, fields) : null,
    ] : null,
    h('div', { class: 'table-wrap' }, h('table', { class: 'errors-table' },
      h('caption', { class: 'sr-only' }, 'Error statuses and what they mean'),
      h('thead', {}, h('tr', {}, ['Status', 'Meaning'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, statuses.map((status) => {
        const said = [...meanings.get(status)];
        return h('tr', { id: `tag-errors-${status}`, tabindex: '-1' },
          h('th', { scope: 'row' }, h('code', { class: `http-status status-${status[0]}xx` }, status)),
          h('td', {}, REASONS[status] || '',
            said.length === 1 ? [': ', markdownInline(said[0])] : null,
            said.length > 1 ? h('ul', { class: 'plain' }, said.map((s) => h('li', {}, markdownInline(s)))) : null));
      })))));
}

function operation(doc, { path, method, op, shared }) {
  const params = [...shared, ...(op.parameters || [])].map((p) => resolve(doc, p));
  const security = op.security || doc.security || [];
  const schemes = security.flatMap((s) => Object.keys(s));
  const body = op.requestBody ? resolve(doc, op.requestBody) : null;
  const responses = Object.entries(op.responses || {});
  const errors = responses.filter(([status]) => isError(status)).map(([status]) => status);
  return h('details', { class: 'op card', dataset: { method, path } },
    h('summary', {},
      h('h3', {}, h('span', { class: `method method-${method}` }, method.toUpperCase()), ' ', h('code', { class: 'path' }, path)),
      op.summary ? h('span', { class: 'op-summary' }, markdownInline(op.summary)) : null),
    op.description && op.description !== op.summary ? prose(doc, op.description) : null,
    h('p', { class: 'small auth' }, schemes.length
      ? ['Authorization: ', join(schemes.map((s) => h('code', {}, s)), ' or ')]
      : 'No Authorization needed.'),
    params.length ? [h('h4', {}, 'Parameters'), h('div', { class: 'table-wrap' }, h('table', { class: 'params' },
      h('thead', {}, h('tr', {}, ['Name', 'In', 'Type', 'Required', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, params.map((p) => h('tr', {},
        h('td', {}, h('code', {}, p.name)), h('td', {}, p.in), h('td', {}, typeOf(doc, p.schema || {})),
        h('td', {}, p.required ? 'yes' : 'no'), h('td', {}, prose(doc, p.description))))))) ] : null,
    body ? [h('h4', {}, 'Request body'), prose(doc, body.description), content(doc, body.content, body.required)] : null,
    h('h4', {}, 'Responses'),
    h('dl', { class: 'responses' }, responses.filter(([status]) => !isError(status)).map(([status, r]) => {
      const resp = resolve(doc, r);
      return [h('dt', {}, h('code', { class: `http-status status-${status[0]}xx` }, status)),
        h('dd', {}, prose(doc, resp.description), mediaTypes(doc, resp.content))];
    })),
    errors.length ? h('p', { class: 'error-codes' }, 'Errors: ', join(errors.map((status) => h('a', {
      href: `#/api/tags/errors-${status}`, class: `http-status status-${status[0]}xx`, title: REASONS[status] || null,
    }, status)), ' '), ' (', h('a', { href: '#/api/tags/errors' }, 'what they mean'), ')') : null,
    h('h4', {}, 'Example'),
    h('pre', { class: 'code-block curl' }, h('code', {}, lines(curlExample(doc, { path, method, op, params, schemes, origin: location.origin })))));
}

/** A request body: its media types, each with its schema's fields. */
function content(doc, c, required) {
  if (!c) return null;
  return Object.entries(c).map(([type, media]) => h('div', { class: 'media' },
    h('p', { class: 'small' }, h('code', {}, type), required ? ' (required)' : '',
      media.schema ? [': ', typeOf(doc, media.schema)] : null),
    media.schema ? schemaBody(doc, media.schema, true) : null));
}

/** An answer's media types and their schemas, in one line (the schemas are linked). */
function mediaTypes(doc, c) {
  if (!c) return null;
  return h('p', { class: 'small' }, join(Object.entries(c).map(([type, media]) => [h('code', {}, type),
    media.schema ? [': ', typeOf(doc, media.schema)] : null]), '; '));
}

/** A short description of a schema's type, with links to named schemas. */
function typeOf(doc, schema) {
  if (!schema || typeof schema !== 'object') return 'any';
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return h('a', { href: `#/api/schemas/${encodeURIComponent(name)}`, class: 'ref' }, name);
  }
  const alts = schema.oneOf || schema.anyOf;
  if (alts) {
    // An optional value is `oneOf: [its type, {type: 'null'}]`: "X or null".
    const isNull = (s) => s && s.type === 'null';
    const types = join(alts.filter((s) => !isNull(s)).map((s) => typeOf(doc, s)), ' or ');
    return alts.some(isNull) ? [types, ' or null'] : types;
  }
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

function join(items, sep) {
  return items.flatMap((item, i) => (i ? [sep, item] : [item]));
}

/** The fields of an object schema (resolving a `$ref` at the top), or its variants / values. */
function schemaBody(doc, schema, inline = false) {
  const s = resolve(doc, schema);
  const out = [];
  if (!inline && s.description) out.push(prose(doc, s.description));
  if (inline && schema.$ref && s.description) out.push(h('div', { class: 'muted small' }, prose(doc, s.description)));
  if (s.enum) out.push(h('p', {}, 'Values: ', join(s.enum.map((v) => h('code', {}, JSON.stringify(v))), ', ')));
  const alts = s.oneOf || s.anyOf;
  if (alts) {
    out.push(h('p', {}, 'One of:'), h('ul', { class: 'variants' }, alts.map((a) => {
      const r = resolve(doc, a);
      return h('li', {}, typeOf(doc, a), r.description ? [' — ', markdownInline(r.description, { reference: schemaHref(doc) })] : '',
        r.properties && !a.$ref ? fieldsTable(doc, r) : null);
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
      // An optional field's words sit on its non-null alternative (`oneOf: [{$ref, description}, null]`).
      const alternative = (prop.oneOf || prop.anyOf || []).find((a) => a.description);
      const desc = prop.description || (alternative && alternative.description) || (prop.$ref ? '' : resolved.description) || '';
      return h('tr', {}, h('td', {}, h('code', {}, name)), h('td', {}, typeOf(doc, prop)),
        h('td', {}, required.has(name) ? 'yes' : 'no'), h('td', {}, prose(doc, desc)));
    }))));
}
