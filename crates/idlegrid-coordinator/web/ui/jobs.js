// Jobs list (live states over server-sent events) and helpers shared with the job page.

import { api } from './api.js';
import { alertSlot, badge, formatCredits, formatDuration, h, heading, replace, timeTag } from './dom.js';
import { follow } from './sse.js';

/** Webhook secrets from `POST /v1/jobs` answers, shown once on the job page, then dropped. */
export const oneTimeSecrets = new Map();

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** The job's progress as a fraction, or null while the number of chunks is unknown. */
export function jobProgress(job) {
  if (job.state === 'completed') return 1;
  const c = job.chunks || {};
  if (!c.total) return ['created', 'submitted'].includes(job.state) ? 0 : null;
  return Math.max(0, Math.min(1, ((c.done || 0) + (c.running_progress || 0)) / c.total));
}

/**
 * How long the job has run, in seconds: from `run` (its input complete) to its end, or to now
 * while it runs; null when it never ran. The time spent waiting for the input is not counted.
 */
function jobDuration(job, now = Date.now()) {
  const start = Date.parse(job.submitted_at);
  if (Number.isNaN(start)) return null;
  const end = job.finished_at ? Date.parse(job.finished_at) : TERMINAL.has(job.state) ? NaN : now;
  return Number.isNaN(end) ? null : Math.max(0, end - start) / 1000;
}

/** The job's duration in words, "so far" while it runs. */
export function durationText(job) {
  const seconds = jobDuration(job);
  if (seconds === null) return '—';
  return TERMINAL.has(job.state) ? formatDuration(seconds) : `${formatDuration(seconds)} so far`;
}

/** What the job was charged, in credits; "so far" while it runs. */
function costText(job) {
  if (!job.cost) return '—';
  const charged = formatCredits(job.cost.charged, { short: true });
  return TERMINAL.has(job.state) ? charged : `${charged} so far`;
}

export function percent(fraction) {
  return fraction === null || fraction === undefined ? '—' : `${Math.floor(fraction * 100)} %`;
}

const PAGE = 25;

/** The list's columns: heading and the class of its cells (phones hide `app` and `created`). */
const COLUMNS = [['Job'], ['App', 'app'], ['State'], ['Progress'], ['Duration', 'duration'], ['Cost', 'cost'], ['Created', 'created']];

export async function jobsView(main, _params, { isCurrent }) {
  main.append(heading('Jobs'));
  const alerts = alertSlot();
  const body = h('tbody');
  const table = h('table', { class: 'jobs' },
    h('caption', { class: 'sr-only' }, 'Your jobs, newest first; states update live'),
    h('thead', {}, h('tr', {}, COLUMNS.map(([t, cls]) => h('th', { scope: 'col', class: cls }, t)))),
    body);
  const empty = h('p', { class: 'muted', hidden: true }, 'No jobs yet. ', h('a', { href: '#/jobs/new' }, 'Create one'), '.');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older jobs');
  main.append(h('div', { class: 'actions left' }, h('a', { class: 'button', href: '#/jobs/new' }, 'New job')),
    alerts.el, h('div', { class: 'table-wrap' }, table), empty, h('div', { class: 'actions left' }, more));

  const rows = new Map(); // id -> { tr, job }
  let nextBefore = null;
  let stopped = false;

  function row(job) {
    const fraction = jobProgress(job);
    const cells = [
      h('td', {}, h('a', { href: `#/jobs/${job.id}` }, `Job ${job.id}`),
        job.name ? h('span', { class: 'job-name' }, job.name) : null),
      h('td', { class: 'app' }, job.app),
      h('td', {}, badge(job.state)),
      h('td', {}, fraction === null ? '—' : [h('progress', { max: 1, value: fraction, 'aria-label': `Job ${job.id} progress` }), ' ', percent(fraction)]),
      h('td', { class: 'duration' }, durationText(job)),
      h('td', { class: 'cost' }, costText(job)),
      h('td', { class: 'created' }, timeTag(job.created_at)),
    ];
    return cells;
  }

  function put(job, atEnd = true) {
    const known = rows.get(job.id);
    if (known) {
      replace(known.tr, row(job));
      known.job = job;
    } else {
      const tr = h('tr', { dataset: { job: String(job.id) } }, row(job));
      rows.set(job.id, { tr, job });
      if (atEnd) body.append(tr); else body.prepend(tr);
    }
  }

  async function load(before) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (before !== null && before !== undefined) query.set('before', String(before));
    const list = await api(`/v1/jobs?${query}`);
    for (const job of list.jobs) put(job);
    if (before === null || before === undefined) nextBefore = list.next_before ?? null;
    else nextBefore = list.next_before ?? null;
    more.hidden = nextBefore === null;
    empty.hidden = rows.size > 0;
  }

  more.addEventListener('click', async () => {
    more.disabled = true;
    try { await load(nextBefore); } catch (e) { alerts.show(e); } finally { more.disabled = false; }
  });

  try {
    await load(null);
  } catch (e) {
    alerts.show(e, 'The jobs could not be loaded');
  }
  // One stream for the whole list: the newest jobs, then every change and every new job.
  const stopStream = follow('/v1/jobs/events', {
    onEvent: (name, data) => {
      if (name !== 'job' || !data || !isCurrent()) return;
      // A listed job is updated in place; one newer than every row is new and goes on top;
      // older ones not listed yet come with "Older jobs", in their place.
      const newest = Math.max(-1, ...rows.keys());
      if (rows.has(data.id)) put(data);
      else if (data.id > newest) put(data, false);
      empty.hidden = rows.size > 0;
    },
    onError: (e) => alerts.show(e, 'Live updates of the list stopped'),
    shouldStop: () => stopped,
  });
  // A running job's duration goes on between its events.
  const ticker = setInterval(() => {
    for (const { tr, job } of rows.values()) {
      if (!TERMINAL.has(job.state)) tr.querySelector('td.duration').textContent = durationText(job);
    }
  }, 1000);
  return () => {
    stopped = true;
    stopStream();
    clearInterval(ticker);
  };
}
