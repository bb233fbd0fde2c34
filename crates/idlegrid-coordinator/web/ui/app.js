// The dashboard: sign-in, navigation between the pages (hash routes), focus handling.

import { api, ApiError, missingEndpoint, session } from './api.js';
import { alertSlot, announce, field, h, heading, replace } from './dom.js';
import { jobsView } from './jobs.js';
import { jobView } from './job.js';
import { newJobView } from './newjob.js';
import { devicesView } from './devices.js';
import { gridView } from './grid.js';
import { referenceView } from './reference.js';

/** Pages: pattern, view, title, who may see it (null: anyone, signed in or not). */
const ROUTES = [
  { path: /^#\/signin$/, view: signinView, title: 'Sign in', kinds: null },
  { path: /^#\/jobs$/, view: jobsView, title: 'Jobs', kinds: ['customer'] },
  { path: /^#\/jobs\/new$/, view: newJobView, title: 'New job', kinds: ['customer'] },
  { path: /^#\/jobs\/(\d+)$/, view: jobView, title: 'Job', kinds: ['customer'] },
  { path: /^#\/devices$/, view: devicesView, title: 'Devices', kinds: ['owner'] },
  { path: /^#\/grid$/, view: gridView, title: 'Grid', kinds: ['operator'] },
  { path: /^#\/api(?:\/(schemas|tags)\/([A-Za-z0-9_.%-]+))?$/, view: referenceView, title: 'API reference', kinds: null },
];

/** The nav links for each kind of credential. */
const NAV = {
  customer: [['#/jobs', 'Jobs'], ['#/jobs/new', 'New job']],
  owner: [['#/devices', 'Devices']],
  operator: [['#/grid', 'Grid']],
  worker: [],
};

function home(me) {
  if (!me) return '#/signin';
  return { customer: '#/jobs', owner: '#/devices', operator: '#/grid' }[me.kind] || '#/api';
}

let cleanup = null;
let renderId = 0;

async function route() {
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/')) return; // an in-page anchor, not a page
  const me = session.me;
  if (hash === '#/' || hash === '#') {
    location.replace(home(me));
    return;
  }
  const found = ROUTES.map((r) => ({ r, m: hash.match(r.path) })).find((x) => x.m);
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  renderNav(hash);
  const main = document.getElementById('main');
  main.replaceChildren();
  const id = ++renderId;
  if (!found) {
    main.append(heading('Page not found'), h('p', {}, 'There is no such page. ', h('a', { href: home(me) }, 'Go to the start page')));
    finish('Page not found');
    return;
  }
  const { r, m } = found;
  if (r.kinds && !me) {
    sessionStorage.setItem('idlegrid.after', hash);
    location.replace('#/signin');
    return;
  }
  if (r.kinds && !r.kinds.includes(me.kind)) {
    main.append(heading(r.title), h('p', { class: 'notice' },
      `This page is for ${r.kinds.join(' or ')} accounts; you are signed in as a ${me.kind}. `,
      h('a', { href: home(me) }, 'Go to your start page')));
    finish(r.title);
    return;
  }
  const result = r.view(main, m.slice(1), { me, navigate, isCurrent: () => id === renderId });
  finish(r.title);
  try {
    const stop = await result;
    if (id === renderId) cleanup = stop;
    else if (typeof stop === 'function') stop();
  } catch (e) {
    if (id === renderId) main.append(alertBox(e));
  }
}

function alertBox(e) {
  return h('div', { class: 'alert', role: 'alert' }, e.message || String(e));
}

/** Moves focus to the page's main heading and names the document after it. */
let firstPage = true;

function finish(title) {
  document.title = `${title} · idlegrid`;
  // On a fresh load the browser starts at the top (the skip link is the first Tab stop);
  // moving between pages moves focus to the new page's heading.
  if (firstPage) { firstPage = false; return; }
  const main = document.getElementById('main');
  const active = document.activeElement;
  // A view that already moved focus inside the page (e.g. to a schema of the reference) keeps it.
  if (active && active !== main && main.contains(active) && active.id !== 'page-title') return;
  (document.getElementById('page-title') || main).focus();
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function renderNav(hash) {
  const me = session.me;
  const links = [...(me ? NAV[me.kind] || [] : []), ['#/api', 'API reference']];
  const current = links.filter(([href]) => hash === href || hash.startsWith(`${href}/`))
    .sort((a, b) => b[0].length - a[0].length)[0];
  replace(document.getElementById('nav'), h('ul', {}, links.map(([href, text]) => h('li', {},
    h('a', { href, 'aria-current': current && current[0] === href ? 'page' : null }, text)))));
  const who = document.getElementById('who');
  if (me) {
    replace(who,
      h('span', { class: 'who-name' }, me.name ? `${me.name} ` : '', h('span', { class: 'kind' }, me.name ? `(${me.kind})` : me.kind)),
      h('button', { type: 'button', class: 'secondary', id: 'sign-out', onclick: signOut }, 'Sign out'));
  } else if (hash !== '#/signin') {
    replace(who, h('a', { href: '#/signin', class: 'button secondary' }, 'Sign in'));
  } else {
    who.replaceChildren();
  }
}

function signOut() {
  session.clear();
  announce('Signed out.');
  navigate('#/signin');
}

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

function signinView(main, _params, { me }) {
  const alerts = alertSlot();
  const secret = h('input', { type: 'password', name: 'secret', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const { wrap } = field('Secret', secret, 'Your API key (customers), enrollment token (device owners) or operator key.');
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
      const who = await whoIs(value);
      session.save(value, who);
      announce(`Signed in as ${who.name ? `${who.name} (${who.kind})` : who.kind}.`);
      const after = sessionStorage.getItem('idlegrid.after');
      sessionStorage.removeItem('idlegrid.after');
      navigate(after && after !== '#/signin' ? after : home(who));
    } catch (e) {
      alerts.show(e instanceof ApiError ? e.message : e);
      announce('Sign-in failed.');
      secret.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(heading('Sign in'));
  if (me) main.append(h('p', { class: 'notice' }, `You are signed in as ${me.name ? `${me.name} (${me.kind})` : me.kind}. Signing in again replaces that.`));
  main.append(form, h('p', { class: 'muted' }, 'The API reference needs no sign-in: ', h('a', { href: '#/api' }, 'read it here'), '.'));
}

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  (document.getElementById('page-title') || document.getElementById('main')).focus();
});
window.addEventListener('hashchange', route);
route();
