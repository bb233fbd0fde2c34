// The curl command of an endpoint, for the API reference: its method and path on this
// coordinator, the Authorization header its security scheme asks for (the secret read from a
// shell variable), its required query and header parameters, and a body of its schema's shape.

import { exampleOf, resolve } from './openapi-schema.js';

/** A word in single quotes for a POSIX shell. */
function quoted(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

/** The shell variable holding the secret of a security scheme: `api_key` → `$IDLEGRID_API_KEY`. */
function secretVariable(scheme) {
  return `$IDLEGRID_${scheme.replace(/[^A-Za-z0-9]+/g, '_').toUpperCase()}`;
}

/** A path or query parameter's example: the document's, else 1 for a number, else `<name>`. */
function parameterValue(doc, param) {
  const schema = resolve(doc, param.schema || {});
  if (param.example !== undefined) return String(param.example);
  if (schema.example !== undefined) return String(schema.example);
  const types = [].concat(schema.type || []);
  if (types.includes('integer') || types.includes('number')) return String(exampleOf(doc, schema));
  return `<${param.name}>`;
}

/**
 * The command, one option a line. `params`: the endpoint's parameters, resolved; `schemes`: the
 * names of the security schemes it accepts (the first is used); `origin`: where the API is.
 */
export function curlExample(doc, { path, method, op, params, schemes, origin }) {
  const byName = (where) => params.filter((p) => p.in === where);
  let url = path;
  for (const p of byName('path')) url = url.replace(`{${p.name}}`, parameterValue(doc, p));
  const query = byName('query').filter((p) => p.required).map((p) => `${p.name}=${parameterValue(doc, p)}`);
  if (query.length) url += `?${query.join('&')}`;

  const success = Object.entries(op.responses || {}).find(([status]) => /^2/.test(status));
  const answers = Object.keys((success && resolve(doc, success[1]).content) || {});
  const first = [`curl${method === 'get' ? '' : ` -X ${method.toUpperCase()}`}`];
  if (answers.includes('text/event-stream')) first.push('-N');
  first.push(quoted(`${origin}${url}`));
  const lines = [first.join(' ')];
  if (schemes.length) lines.push(`-H "Authorization: Bearer ${secretVariable(schemes[0])}"`);
  for (const p of byName('header').filter((x) => x.required)) lines.push(`-H ${quoted(`${p.name}: ${parameterValue(doc, p)}`)}`);

  const body = op.requestBody ? resolve(doc, op.requestBody) : null;
  const types = Object.entries((body && body.content) || {});
  const json = types.find(([type]) => type === 'application/json');
  if (json) {
    lines.push(`-H 'Content-Type: application/json'`);
    lines.push(`-d ${quoted(JSON.stringify(exampleOf(doc, json[1].schema || {}), null, 2))}`);
  } else if (types.length) {
    lines.push(`-H ${quoted(`Content-Type: ${types[0][0]}`)}`);
    lines.push('--data-binary @file');
  }
  if (answers.length && answers.every((type) => type === 'application/octet-stream')) lines.push('-o output');
  return lines.join(' \\\n  ');
}
