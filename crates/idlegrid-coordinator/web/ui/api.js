// The coordinator's JSON API, with the secret the person signed in with.

const SECRET = 'idlegrid.secret';
const ME = 'idlegrid.me';

/** An error answer of the API: `{"error": {"code", "message"}}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get secret() { return sessionStorage.getItem(SECRET); },
  get me() {
    try { return JSON.parse(sessionStorage.getItem(ME) || 'null'); } catch { return null; }
  },
  save(secret, me) {
    sessionStorage.setItem(SECRET, secret);
    sessionStorage.setItem(ME, JSON.stringify(me));
  },
  clear() {
    sessionStorage.removeItem(SECRET);
    sessionStorage.removeItem(ME);
  },
};

/** Reads an error body into an ApiError (any body: the server's message if there is one). */
export async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText || 'error'}`;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch {
      if (text.trim()) message = `${message}: ${text.trim().slice(0, 300)}`;
    }
  } catch { /* no body */ }
  return new ApiError(response.status, code, message);
}

/**
 * Calls the API. `body` (an object) is sent as JSON; `keepalive` lets the request outlive the
 * page (a tab closing). Returns the parsed JSON answer; throws an
 * ApiError for an error answer, or an Error saying the coordinator cannot be reached.
 */
export async function api(path, { method = 'GET', body, secret = session.secret, signal, auth = true, keepalive = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (auth && secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, keepalive });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new Error(`The coordinator could not be reached (${e.message}).`);
  }
  if (!response.ok) throw await errorFrom(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

let openapiDoc = null;

/** The coordinator's OpenAPI document (no sign-in needed), read once per page load. */
export async function openapi() {
  if (!openapiDoc) openapiDoc = api('/openapi.json', { auth: false }).catch((e) => { openapiDoc = null; throw e; });
  return openapiDoc;
}

/** Whether an error means "this server has no such endpoint yet". */
export function missingEndpoint(error) {
  return error instanceof ApiError && error.status === 404 && error.code === 'no_such_endpoint';
}
