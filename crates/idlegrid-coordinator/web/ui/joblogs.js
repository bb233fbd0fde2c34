// A job's logs on its page: what each task's script wrote to stderr on its device (the end of
// it), and what the grid's partition and assemble steps said of the job; oldest first, each
// line marked with its level (`GET /v1/jobs/{id}/logs`).
//
// The section is closed at first and asks for nothing until it is opened; then it loads again
// when the level changes, when the job changes state (while open, or at the next opening) and
// when Refresh is pressed, never on the job's progress. A log's text is the device's: every
// line is shown as text (dom.js's `h`), never as markup.

import { api, missingEndpoint } from './api.js';
import { alertSlot, chunkNumber, counted, field, h, replace, timeTag } from './dom.js';

/** The levels a person can ask for, from the least; the API's names. */
const LEVELS = [
  ['debug', 'Debug and above'],
  ['info', 'Info and above'],
  ['warning', 'Warnings and errors'],
  ['error', 'Errors only'],
];
/** Logs asked for per page. */
const PAGE = 50;
/** Pages read in a row while a page has no log at the level asked (logs with no line at that
 * level are left out of a page, which may leave it empty though more follow). */
const EMPTY_PAGES = 10;

const STEPS = { partition: 'Partition', task: 'Task', reduce: 'Reduce', assemble: 'Assemble' };

/**
 * The Logs section of job `id`; `total()` says the job's number of chunks (or null while its
 * input is being split). Returns { el, jobChanged() }: jobChanged() after the job's state changed.
 */
export function logsSection(id, { total = () => null } = {}) {
  const level = h('select', { id: 'log-level', name: 'level' },
    LEVELS.map(([value, words]) => h('option', { value, selected: value === 'info' }, words)));
  const refresh = h('button', { type: 'button', class: 'secondary small', id: 'logs-refresh' }, 'Refresh');
  const said = h('p', { class: 'muted small logs-said' });
  const alerts = alertSlot();
  const list = h('ol', { class: 'log-list', 'aria-labelledby': 'logs-h' });
  const more = h('button', { type: 'button', class: 'secondary', id: 'logs-more', hidden: true }, 'Load more');
  const details = h('details', { id: 'job-logs' },
    h('summary', {}, h('h2', { id: 'logs-h' }, 'Logs'),
      h('span', { class: 'muted small' }, ' what the tasks wrote to stderr, and the grid\'s steps')),
    h('div', { class: 'log-controls' }, field('Level', level).wrap, refresh),
    said, alerts.el, list, h('div', { class: 'actions left' }, more));
  const el = h('section', { class: 'card job-logs', 'aria-labelledby': 'logs-h' }, details);

  /** Where the next page starts (the API's next_after), or null when there is none. */
  let after = null;
  let shownCount = 0;
  /** Whether what is shown is out of date (never loaded, or the job changed since). */
  let stale = true;
  let unavailable = false;
  /** Counts loads: an answer for an older one (another level, a refresh since) is dropped. */
  let generation = 0;

  function sayWhat() {
    const words = LEVELS.find(([value]) => value === level.value)[1].toLowerCase();
    said.textContent = shownCount === 0
      ? `No logs with lines at this level (${words}) yet.`
      : `${counted(shownCount, 'log')} (${words})${after ? ', more to load' : ''}.`;
  }

  /** Reads pages from `after` (none: from the start) until one has logs or there are no more. */
  async function load({ from = null, fresh }) {
    if (unavailable) return;
    generation += 1;
    const mine = generation;
    const fromMore = document.activeElement === more;
    list.setAttribute('aria-busy', 'true');
    refresh.disabled = true;
    more.disabled = true;
    if (fresh) said.textContent = 'Loading…';
    try {
      let cursor = from;
      const logs = [];
      for (let i = 0; i < EMPTY_PAGES; i += 1) {
        const query = new URLSearchParams({ level: level.value, limit: String(PAGE) });
        if (cursor) query.set('after', cursor);
        const answer = await api(`/v1/jobs/${id}/logs?${query}`);
        if (mine !== generation) return;
        logs.push(...(answer.logs || []));
        cursor = answer.next_after || null;
        if (logs.length || !cursor) break;
      }
      const items = logs.map((log) => logItem(log, total()));
      if (fresh) {
        replace(list, items);
        shownCount = 0;
      } else {
        list.append(...items);
      }
      shownCount += items.length;
      after = cursor;
      stale = false;
      alerts.clear();
      more.hidden = !after;
      sayWhat();
      // After Load more, the keyboard goes on at the first log it brought.
      if (!fresh && fromMore && items.length) {
        const head = items[0].querySelector('.log-head');
        head.setAttribute('tabindex', '-1');
        head.focus();
      }
    } catch (e) {
      if (mine !== generation) return;
      if (missingEndpoint(e)) {
        unavailable = true;
        replace(list);
        more.hidden = true;
        said.textContent = 'This coordinator does not keep jobs\' logs.';
      } else {
        alerts.show(e, 'The logs could not be loaded');
        if (fresh) said.textContent = '';
      }
    } finally {
      if (mine === generation) {
        list.removeAttribute('aria-busy');
        refresh.disabled = unavailable;
        more.disabled = false;
      }
    }
  }

  details.addEventListener('toggle', () => { if (details.open && stale) load({ fresh: true }); });
  level.addEventListener('change', () => { stale = true; if (details.open) load({ fresh: true }); });
  refresh.addEventListener('click', () => load({ fresh: true }));
  more.addEventListener('click', () => { if (after) load({ from: after, fresh: false }); });

  return {
    el,
    jobChanged() {
      stale = true;
      if (details.open) load({ fresh: true });
    },
  };
}

/** One log: its header (the step; for a task its chunk, device and outcome; the time) and its
 * lines, each after its level's word. */
function logItem(log, total) {
  const parts = [
    h('span', { class: 'log-step' }, STEPS[log.step] || String(log.step)),
    log.chunk === null || log.chunk === undefined ? null : h('span', { class: 'log-chunk' }, `chunk ${chunkNumber(log.chunk, total)}`),
    log.device === null || log.device === undefined ? null : h('span', { class: 'log-device' }, `device ${log.device}`),
    log.outcome ? h('span', { class: `log-outcome outcome-${log.outcome === 'failed' ? 'failed' : 'other'}` }, log.outcome) : null,
    h('span', { class: 'log-when' }, timeTag(log.at)),
  ].filter(Boolean);
  const head = h('h3', { class: 'log-head' }, parts.flatMap((part, i) => (i ? [' · ', part] : [part])));
  const lines = h('ol', { class: 'log-lines' }, (log.lines || []).map((line) => {
    const lvl = ['debug', 'info', 'warning', 'error'].includes(line.level) ? line.level : 'info';
    return h('li', { class: `log-line level-${lvl}`, dataset: { level: lvl } },
      h('span', { class: 'log-level' }, lvl), ' ', h('span', { class: 'log-text' }, line.text));
  }));
  return h('li', { class: 'log-entry', dataset: { step: String(log.step), id: String(log.id) } }, head, lines);
}
