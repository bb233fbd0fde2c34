// The coordinator's JSON API, with the dashboard session the person signed in to.

const SECRET = 'idlegrid.secret';
const ME = 'idlegrid.me';
const SESSION_ID = 'idlegrid.session';

/** An error answer of the API: `{"error": {"code", "message"}}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/**
 * The tab's sign-in: the session's secret (never the key it was made with), who it is, and the
 * session's id (to revoke it on signing out). Kept in sessionStorage: it ends with the tab.
 */
export const session = {
  get secret() { return sessionStorage.getItem(SECRET); },
  get me() {
    try { return JSON.parse(sessionStorage.getItem(ME) || 'null'); } catch { return null; }
  },
  get id() { return sessionStorage.getItem(SESSION_ID); },
  save(secret, me, id = null) {
    sessionStorage.setItem(SECRET, secret);
    sessionStorage.setItem(ME, JSON.stringify(me));
    if (id === null) sessionStorage.removeItem(SESSION_ID);
    else sessionStorage.setItem(SESSION_ID, String(id));
  },
  clear() {
    sessionStorage.removeItem(SECRET);
    sessionStorage.removeItem(ME);
    sessionStorage.removeItem(SESSION_ID);
  },
};

/**
 * Forgets the tab's sign-in and tells the page (the `idlegrid:signed-out` event, which the
 * router answers by going to the sign-in page and showing `reason` there). `ended`: the
 * session ended under the person (not their choice), so signing in again comes back here.
 */
export function signedOut(reason, { ended = false } = {}) {
  session.clear();
  window.dispatchEvent(new CustomEvent('idlegrid:signed-out', { detail: { reason, ended } }));
}

/**
 * Signs the tab out when `error`, the answer to a request made with `secret`, says the tab's
 * session is over (revoked on the Keys page or elsewhere, expired, or its account deleted), so
 * the sign-in page says why instead of every later request failing. The API's calls and the
 * event streams pass their error answers here.
 */
export function checkSession(error, secret) {
  if (!(error instanceof ApiError) || error.status !== 401 || !secret || secret !== session.secret) return;
  signedOut(error.code === 'invalid_credentials'
    ? 'Your session has ended: it was revoked, it expired, or its account was deleted. Sign in again.'
    : `Your session has ended (${error.message}). Sign in again.`, { ended: true });
}

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
  if (!response.ok) {
    const error = await errorFrom(response);
    if (auth) checkSession(error, secret);
    throw error;
  }
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
