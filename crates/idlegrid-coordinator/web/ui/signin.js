// Signing in and out. The key a person types (API key, enrollment token, operator key) is
// traded at once for a dashboard session that expires (`POST /v1/sessions`), and only the
// session is kept in the tab: the key is never stored. Signing out revokes the session.

import { api, ApiError, missingEndpoint, session, signedOut } from './api.js';
import { alertSlot, announce, field, h, heading } from './dom.js';
import { browserName } from './platform.js';

/** Finds out what a secret is: `GET /v1/me`, or, on a server without it, whether it is a customer key. */
async function whoIs(secret) {
  try {
    return await api('/v1/me', { secret });
  } catch (e) {
    if (!missingEndpoint(e)) throw e;
  }
  await api('/v1/apps', { secret });
  return { kind: 'customer', id: null, name: null };
}

/** "customer", or "Acme (customer)". */
export function whoText(who) {
  return who.name ? `${who.name} (${who.kind})` : who.kind;
}

/**
 * Signs the tab in with `key`: makes a session named after this browser, so the account's Keys
 * page tells its sessions apart, and keeps it. Returns who signed in.
 */
export async function startSession(key) {
  const made = await api('/v1/sessions', { method: 'POST', body: { name: `dashboard (${browserName()})` }, secret: key });
  try {
    const who = await whoIs(made.secret);
    session.save(made.secret, who, made.id);
    return who;
  } catch (e) {
    api(`/v1/secrets/${made.id}`, { method: 'DELETE', secret: made.secret }).catch(() => {});
    throw e;
  }
}

/**
 * Signs the tab out: revokes its session on the coordinator and forgets it. A session that
 * cannot be revoked now (the coordinator is unreachable) is forgotten all the same, and the
 * page says it stays valid until it expires.
 */
export async function signOut() {
  const { id, secret } = session;
  // Forgotten first: a refusal of the revocation is then not taken for a session that ended.
  session.clear();
  let reason = 'Signed out.';
  if (id && secret) {
    try {
      await api(`/v1/secrets/${id}`, { method: 'DELETE', secret });
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        reason = `Signed out of this tab, but the session could not be revoked (${e.message}); it ends by itself within seven days.`;
      }
    }
  }
  signedOut(reason);
}

/** Where a page's sign-in goes after it: the page asked for, else the start page. */
function afterSignIn(who, home) {
  const after = sessionStorage.getItem('idlegrid.after');
  sessionStorage.removeItem('idlegrid.after');
  return after && after !== '#/signin' ? after : home(who);
}

/** Signs in with `key` and goes on, announcing who; for the sign-in and sign-up pages. */
export async function signInAndGo(key, { navigate, home }) {
  const who = await startSession(key);
  announce(`Signed in as ${whoText(who)}.`);
  navigate(afterSignIn(who, home));
}

/** The sign-in page; `notice` says why the tab was signed out, when it just was. */
export function signinView(main, _params, { me, navigate, home, notice }) {
  const alerts = alertSlot();
  const secret = h('input', { type: 'password', name: 'secret', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const { wrap } = field('Secret', secret, 'Your API key (customers), enrollment token (device owners) or operator key. This tab keeps a session made from it, never the key itself.');
  const show = h('input', { type: 'checkbox', id: 'show-secret', onchange: () => { secret.type = show.checked ? 'text' : 'password'; } });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card narrow', novalidate: true }, wrap,
    h('div', { class: 'field check' }, show, h('label', { for: 'show-secret' }, 'Show the secret')),
    alerts.el, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    alerts.clear();
    const value = secret.value.trim();
    if (!value) {
      alerts.show('Enter your secret.');
      secret.focus();
      return;
    }
    submit.disabled = true;
    announce('Signing in…');
    try {
      await signInAndGo(value, { navigate, home });
    } catch (e) {
      alerts.show(e instanceof ApiError ? e.message : e);
      announce('Sign-in failed.');
      secret.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(heading('Sign in'));
  if (notice) main.append(h('p', { class: 'notice', id: 'signed-out-reason' }, notice));
  if (me) main.append(h('p', { class: 'notice' }, `You are signed in as ${whoText(me)}. Signing in again replaces that.`));
  const signup = h('p', { class: 'signup-link', hidden: true }, 'New here? ', h('a', { href: '#/signup' }, 'Sign up'), ' for an account of your own.');
  main.append(form, signup, h('p', { class: 'muted' }, 'The API reference needs no sign-in: ', h('a', { href: '#/api' }, 'read it here'), '.'));
  // The sign-up link shows only where this grid takes sign-ups.
  api('/v1/signup', { auth: false })
    .then((open) => { signup.hidden = !(open.customers || open.owners); })
    .catch(() => {});
}
