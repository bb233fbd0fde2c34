// Apps: those the account may run (built in, its own published ones, and those other accounts
// published and an operator made public), each with its versions and a way to start a job
// with it; and how to publish one.
//
// Everything a published app's manifest says (its name, version, description) comes from
// whoever published it: it is shown as text, like any other string of the dashboard (`h`).

import { api } from './api.js';
import { alertSlot, h, heading, timeTag } from './dom.js';

/** Whether an app was published by an account (built-in apps have no publisher). */
export function isPublished(app) {
  return app.publisher !== undefined && app.publisher !== null;
}

/**
 * What a job's `app` names for this app: a built-in app by its name, a published one with its
 * version (`name@version`), so the job runs the version that was chosen, not whichever is the
 * latest when it is created.
 */
export function appReference(app) {
  return isPublished(app) ? `${app.manifest.name}@${app.manifest.version}` : app.manifest.name;
}

/** Who an app comes from, in a word or two: built in, yours, or public (another account's). */
export function publisherText(app, me) {
  if (!isPublished(app)) return 'built in';
  if (me && Number(app.publisher) === Number(me.id)) return app.public ? 'yours, public' : 'yours';
  return 'public';
}

/** The new-job form with this app (this version, for a published one) chosen. */
export function newJobHref(app) {
  return `#/jobs/new?app=${encodeURIComponent(appReference(app))}`;
}

/** The page of an app's versions. */
function versionsHref(name) {
  return `#/apps/${encodeURIComponent(name)}`;
}

/** How versions order: part by part, as numbers (1.10.0 after 1.9.0), as the coordinator orders them. */
function versionKey(version) {
  return String(version).split('.').map((part) => (/^\d+$/.test(part) ? Number(part) : 0));
}

function compareVersions(a, b) {
  const [x, y] = [versionKey(a), versionKey(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i += 1) {
    const d = (x[i] || 0) - (y[i] || 0);
    if (d) return d;
  }
  return 0;
}

/** The sentence on how to publish an app, with the command to do it. */
function howToPublish() {
  return h('p', { class: 'publish-how' },
    'To publish an app of your own, write a folder with its manifest.json and Python task script and run ',
    h('code', {}, 'idlegrid app push DIR'),
    '. It shows here for your account only, until an operator makes it public.');
}

/** `[term, value]` pairs as a definition list laid out in a row that wraps. */
function appFacts(pairs) {
  return h('dl', { class: 'app-facts' }, pairs.filter(Boolean).map(([term, value]) =>
    h('div', {}, h('dt', {}, term), h('dd', {}, value))));
}

export async function appsView(main, _params, { me, isCurrent }) {
  main.append(heading('Apps'),
    h('p', { class: 'lead' }, 'The apps your jobs can run: those built into the grid, yours, and those other accounts published that an operator made public.'),
    howToPublish());
  const alerts = alertSlot();
  const list = h('ul', { class: 'app-list', 'aria-label': 'Apps you may run' });
  const loading = h('p', { class: 'muted' }, 'Loading the apps…');
  main.append(alerts.el, loading, list);
  let apps;
  try {
    apps = await api('/v1/apps');
  } catch (e) {
    loading.remove();
    alerts.show(e, 'The apps could not be loaded');
    return;
  }
  if (!isCurrent()) return;
  loading.remove();
  list.append(...apps.map((app) => appItem(app, me)));
}

/** One app of the list: name, latest version, who it comes from, when, what it does, actions. */
function appItem(app, me) {
  const { name, version, description } = app.manifest;
  return h('li', { class: 'card app', dataset: { app: name } },
    h('h2', { class: 'app-name' }, name),
    appFacts([
      ['Latest version', h('span', { class: 'app-version' }, version)],
      ['Publisher', h('span', { class: 'app-publisher' }, publisherText(app, me))],
      app.published_at ? ['Published', h('span', { class: 'app-published' }, timeTag(app.published_at))] : null,
    ]),
    h('p', { class: 'app-description' }, description),
    h('div', { class: 'actions left' },
      h('a', { class: 'button', href: newJobHref(app), 'aria-label': `New job with ${name}` }, 'New job'),
      h('a', { class: 'button secondary', href: versionsHref(name), 'aria-label': `Versions of ${name}` }, 'Versions')));
}

/** One app's versions, newest first, each with a way to start a job with it. */
export async function appVersionsView(main, [nameText], { me, isCurrent }) {
  let name;
  try { name = decodeURIComponent(nameText); } catch { name = nameText; }
  const title = heading(`App ${name}`);
  title.classList.add('app-title');
  main.append(title);
  const alerts = alertSlot();
  main.append(alerts.el);
  let versions;
  try {
    versions = await api(`/v1/apps/${encodeURIComponent(name)}/versions`);
  } catch (e) {
    alerts.show(e, 'The app’s versions could not be loaded');
    return;
  }
  if (!isCurrent()) return;
  const newest = [...versions].sort((a, b) => compareVersions(b.manifest.version, a.manifest.version));
  const latest = newest[0];
  if (!latest) {
    main.append(h('p', { class: 'muted' }, 'This app has no versions.'));
    return;
  }
  main.append(
    h('p', { class: 'lead app-description' }, latest.manifest.description),
    appFacts([
      ['Publisher', h('span', { class: 'app-publisher' }, publisherText(latest, me))],
      ['Versions', String(versions.length)],
    ]),
    h('div', { class: 'actions left' },
      h('a', { class: 'button', href: newJobHref(latest) }, `New job with the latest version (${latest.manifest.version})`),
      h('a', { class: 'button secondary', href: '#/apps' }, 'All apps')),
    h('section', { class: 'card', 'aria-labelledby': 'versions-h' },
      h('h2', { id: 'versions-h' }, 'Versions'),
      versionsTable(newest, latest)),
    isPublished(latest) ? howToPublish() : null);
}

function versionsTable(versions, latest) {
  const head = ['Version', 'Published', 'Description', 'Bundle', 'Actions'];
  const cell = (i, ...content) => h('td', { 'data-label': head[i] }, ...content);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'stack app-versions' },
    h('caption', { class: 'sr-only' }, 'The app’s versions, newest first'),
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, versions.map((v) => {
      const { name, version, description } = v.manifest;
      return h('tr', { dataset: { version } },
        h('th', { scope: 'row', 'data-label': head[0] }, version, v === latest ? h('span', { class: 'muted' }, ' (latest)') : null),
        cell(1, v.published_at ? timeTag(v.published_at) : 'built in'),
        cell(2, h('span', { class: 'app-description' }, description)),
        cell(3, v.bundle_sha256 ? h('code', { title: v.bundle_sha256 }, `${v.bundle_sha256.slice(0, 12)}…`) : '—'),
        cell(4, h('a', { class: 'button secondary small', href: newJobHref(v), 'aria-label': `New job with ${name} ${version}` }, 'New job')));
    }))));
}
