// The dashboard: navigation between the pages (hash routes), who may see which, focus
// handling, and what happens when the tab is signed out.

import { session } from './api.js';
import { announce, h, heading, replace } from './dom.js';
import { jobsView } from './jobs.js';
import { jobView } from './job.js';
import { newJobView } from './newjob.js';
import { appsView, appVersionsView } from './apps.js';
import { billingView } from './billing.js';
import { devicesView } from './devices.js';
import { earningsView } from './earnings.js';
import { keysView } from './keys.js';
import { gridView } from './grid.js';
import { customersView } from './admin-customers.js';
import { ownersView } from './admin-owners.js';
import { gridDevicesView } from './admin-devices.js';
import { gridJobsView } from './admin-jobs.js';
import { payoutsView } from './admin-payouts.js';
import { referenceView } from './reference.js';
import { signinView, signOut } from './signin.js';
import { signupView } from './signup.js';

const ACCOUNTS = ['customer', 'owner', 'operator'];
/** An operator's page, with its filters after a `?`: `#/admin/devices?owner=3`. */
const admin = (name) => new RegExp(`^#\\/admin\\/${name}(?:\\?(.*))?$`);

/** Pages: pattern, view, title, who may see it (null: anyone, signed in or not). */
const ROUTES = [
  { path: /^#\/signin$/, view: signinView, title: 'Sign in', kinds: null },
  { path: /^#\/signup$/, view: signupView, title: 'Sign up', kinds: null },
  { path: /^#\/jobs$/, view: jobsView, title: 'Jobs', kinds: ['customer'] },
  // The new-job form, with an app chosen beforehand when a page links to it: `#/jobs/new?app=line-stats@1.1.0`.
  { path: /^#\/jobs\/new(?:\?(.*))?$/, view: newJobView, title: 'New job', kinds: ['customer'] },
  { path: /^#\/jobs\/(\d+)$/, view: jobView, title: 'Job', kinds: ['customer'] },
  { path: /^#\/apps$/, view: appsView, title: 'Apps', kinds: ['customer'] },
  { path: /^#\/apps\/([^/?#]+)$/, view: appVersionsView, title: 'App', kinds: ['customer'] },
  { path: /^#\/billing$/, view: billingView, title: 'Billing', kinds: ['customer'] },
  { path: /^#\/devices$/, view: devicesView, title: 'Devices', kinds: ['owner'] },
  { path: /^#\/earnings$/, view: earningsView, title: 'Earnings', kinds: ['owner'] },
  { path: /^#\/keys$/, view: keysView, title: 'Keys', kinds: ACCOUNTS },
  { path: /^#\/grid$/, view: gridView, title: 'Grid', kinds: ['operator'] },
  { path: admin('customers'), view: customersView, title: 'Customers', kinds: ['operator'] },
  { path: admin('owners'), view: ownersView, title: 'Owners', kinds: ['operator'] },
  { path: admin('devices'), view: gridDevicesView, title: 'Devices', kinds: ['operator'] },
  { path: admin('jobs'), view: gridJobsView, title: 'Jobs', kinds: ['operator'] },
  { path: admin('payouts'), view: payoutsView, title: 'Payouts', kinds: ['operator'] },
  { path: /^#\/api(?:\/(schemas|tags)\/([A-Za-z0-9_.%-]+))?$/, view: referenceView, title: 'API reference', kinds: null },
];

/** The nav links for each kind of account. */
const NAV = {
  customer: [['#/jobs', 'Jobs'], ['#/jobs/new', 'New job'], ['#/apps', 'Apps'], ['#/billing', 'Billing'], ['#/keys', 'Keys']],
  owner: [['#/devices', 'Devices'], ['#/earnings', 'Earnings'], ['#/keys', 'Keys']],
  operator: [['#/grid', 'Grid'], ['#/admin/customers', 'Customers'], ['#/admin/owners', 'Owners'], ['#/admin/devices', 'Devices'],
    ['#/admin/jobs', 'Jobs'], ['#/admin/payouts', 'Payouts'], ['#/keys', 'Keys']],
  worker: [],
};

function home(me) {
  if (!me) return '#/signin';
  return { customer: '#/jobs', owner: '#/devices', operator: '#/grid' }[me.kind] || '#/api';
}

let cleanup = null;
let renderId = 0;
/** Why the tab was just signed out: said once, on the sign-in page that follows. */
let signedOutNotice = null;

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
  const notice = signedOutNotice;
  signedOutNotice = null;
  const result = r.view(main, m.slice(1), { me, navigate, home, notice, isCurrent: () => id === renderId });
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
  const page = hash.split('?')[0];
  const links = [...(me ? NAV[me.kind] || [] : []), ['#/api', 'API reference']];
  const current = links.filter(([href]) => page === href || page.startsWith(`${href}/`))
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

// Signed out — by the button, by revoking this session, or because the session ended under
// the page: the sign-in page says why; after an ended session, signing in again comes back.
window.addEventListener('idlegrid:signed-out', (event) => {
  const { reason, ended } = event.detail;
  const hash = location.hash;
  if (ended && hash !== '#/signin' && hash !== '#/signup') sessionStorage.setItem('idlegrid.after', hash);
  signedOutNotice = reason;
  announce(reason);
  navigate('#/signin');
});

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  (document.getElementById('page-title') || document.getElementById('main')).focus();
});
window.addEventListener('hashchange', route);
route();
