// Operators: every job on the grid, by state and by customer, newest first.

import { api } from './api.js';
import { alertSlot, announce, badge, counted, h, heading, timeTag } from './dom.js';
import { accountNames, accountOptions, filterForm, filtersOf, queryString } from './admin.js';

const PAGE = '#/admin/jobs';
const LIMIT = 50;
const STATES = ['created', 'submitted', 'partitioning', 'running', 'assembling', 'completed', 'failed', 'cancelled'];
const HEAD = ['Job', 'Customer', 'App', 'State', 'Chunks done', 'Created', 'Error'];

export async function gridJobsView(main, [query], { isCurrent }) {
  main.append(heading('Jobs'));
  const alerts = alertSlot();
  let filters = filtersOf(query);
  let customers;
  try {
    customers = await accountNames('customers');
  } catch (e) {
    main.append(alerts.el);
    alerts.show(e, 'The customers could not be loaded');
    return undefined;
  }
  if (!isCurrent()) return undefined;
  const body = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No jobs match.');
  const older = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older jobs');
  main.append(filterForm({
    page: PAGE, values: filters,
    fields: [
      { name: 'state', label: 'State', options: [['', 'Any'], ...STATES.map((s) => [s, s])] },
      { name: 'customer', label: 'Customer', options: accountOptions(customers) },
    ],
    onApply: (chosen) => { filters = chosen; load(null, true); },
  }), alerts.el, h('section', { class: 'card', 'aria-labelledby': 'jobs-h' }, h('h2', { id: 'jobs-h' }, 'Jobs'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'stack grid-jobs' },
      h('caption', { class: 'sr-only' }, 'Jobs of the grid, newest first'),
      h('thead', {}, h('tr', {}, HEAD.map((t) => h('th', { scope: 'col' }, t)))),
      body)),
    empty, h('div', { class: 'actions left' }, older)));

  let oldest = null;
  /** The newest jobs (`before` null, the list starts again) or those older than `before`. */
  async function load(before, say = false) {
    try {
      const list = await api(`/v1/admin/jobs${queryString(new URLSearchParams([...filters, ['limit', String(LIMIT)], ['before', before ?? '']]))}`);
      if (!isCurrent()) return;
      alerts.clear();
      if (before === null) body.replaceChildren();
      for (const job of list.jobs) body.append(row(job, customers));
      oldest = list.jobs.length ? list.jobs[list.jobs.length - 1].id : oldest;
      // The list has no "next page" mark: a full page may have more after it.
      older.hidden = list.jobs.length < LIMIT;
      empty.hidden = body.children.length > 0;
      if (say) announce(`${counted(body.children.length, 'job')} shown.`);
    } catch (e) {
      alerts.show(e, 'The jobs could not be loaded');
    }
  }
  older.addEventListener('click', async () => {
    older.disabled = true;
    await load(oldest);
    older.disabled = false;
  });
  await load(null);
  return undefined;
}

function row(job, customers) {
  const cell = (i, ...content) => h('td', { 'data-label': HEAD[i] }, ...content);
  return h('tr', { dataset: { job: String(job.id), state: job.state } },
    h('th', { scope: 'row', 'data-label': HEAD[0] }, `Job ${job.id}`),
    cell(1, customers.get(job.customer) ?? `customer ${job.customer}`),
    cell(2, job.app),
    cell(3, badge(job.state)),
    cell(4, job.tasks_total ? `${job.tasks_done} of ${job.tasks_total}` : '—'),
    cell(5, timeTag(job.created_at)),
    cell(6, job.error ? h('span', { class: 'job-error-line' }, job.error) : '—'));
}
