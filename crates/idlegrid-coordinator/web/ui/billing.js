// Customers' money: the balance, what running jobs hold, the credit's worth, the account's
// entries (deposits, the opening credit, each job's hold and release) and each job's charge.

import { api } from './api.js';
import { alertSlot, badge, counts, h, heading, replace, timeTag } from './dom.js';
import { creditDisplay, moneyText, moneyTile, rateText } from './money.js';
import { TERMINAL } from './jobs.js';

const PAGE = 25;

/** A link to a job's page. */
function jobLink(id) {
  return h('a', { href: `#/jobs/${id}` }, `job ${id}`);
}

/**
 * What an entry was, from its transaction (`hold:12`, `release:12`, `opening:<customer>`,
 * `deposit:<customer>:<reference>`). `me`: the customer, whose id prefixes its deposits'.
 */
function entryText(entry, me) {
  const colon = entry.txn.indexOf(':');
  const kind = colon < 0 ? entry.txn : entry.txn.slice(0, colon);
  const rest = colon < 0 ? '' : entry.txn.slice(colon + 1);
  const job = entry.job ?? null;
  switch (kind) {
    case 'opening': return 'Opening credit';
    case 'deposit': return ['Deposit, reference ', h('code', {}, rest.startsWith(`${me.id}:`) ? rest.slice(`${me.id}:`.length) : rest)];
    case 'hold': return job === null ? 'Held for a job' : ['Held for ', jobLink(job), ' while it runs (its quote)'];
    case 'release': return job === null ? 'Released from a job' : ['Released from ', jobLink(job), ': what its quote did not use'];
    default: return entry.txn;
  }
}

const ENTRIES = ['When', 'What', 'Amount'];
const JOBS = ['Job', 'App', 'State', 'Quote', 'Charged'];

export async function billingView(main, _params, { me, isCurrent }) {
  main.append(heading('Billing'));
  const alerts = alertSlot();
  const rate = h('p', { class: 'lead', id: 'rate' });
  const summary = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const entries = h('div');
  const jobsBody = h('tbody');
  const jobsEmpty = h('p', { class: 'muted', hidden: true }, 'No jobs yet.');
  const older = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older jobs');
  main.append(rate, alerts.el,
    h('section', { class: 'card', 'aria-labelledby': 'balance-h' }, h('h2', { id: 'balance-h' }, 'Balance'), summary),
    h('section', { class: 'card', 'aria-labelledby': 'entries-h' }, h('h2', { id: 'entries-h' }, 'Account entries'),
      h('p', { class: 'small muted' }, 'A job holds its quote while it runs; when it ends, what it did not use is released back to the balance. The newest entries first.'),
      entries),
    h('section', { class: 'card', 'aria-labelledby': 'charges-h' }, h('h2', { id: 'charges-h' }, 'What each job was charged'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'stack charges' },
        h('caption', { class: 'sr-only' }, 'Your jobs, newest first, with their quote and what they were charged'),
        h('thead', {}, h('tr', {}, JOBS.map((t) => h('th', { scope: 'col' }, t)))),
        jobsBody)),
      jobsEmpty, h('div', { class: 'actions left' }, older)));

  let display = null;
  let nextBefore = null;

  async function loadJobs(before) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (before !== null) query.set('before', String(before));
    const list = await api(`/v1/jobs?${query}`);
    for (const job of list.jobs) jobsBody.append(chargeRow(job, display));
    nextBefore = list.next_before ?? null;
    older.hidden = nextBefore === null;
    jobsEmpty.hidden = jobsBody.children.length > 0;
  }

  older.addEventListener('click', async () => {
    older.disabled = true;
    try { await loadJobs(nextBefore); } catch (e) { alerts.show(e); } finally { older.disabled = false; }
  });

  try {
    const balance = await api('/v1/balance');
    display = balance.display || (await creditDisplay());
    if (!isCurrent()) return undefined;
    rate.textContent = rateText(display);
    replace(summary, counts([
      ['Balance', moneyTile(balance.balance, display)],
      ['Held for running jobs', moneyTile(balance.held, display)],
    ]), h('p', { class: 'small muted' }, 'The balance is what new jobs can spend; the grid’s operator adds what you pay them.'));
    replace(entries, balance.entries.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'stack entries' },
      h('caption', { class: 'sr-only' }, 'Entries of your account, newest first'),
      h('thead', {}, h('tr', {}, ENTRIES.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, balance.entries.map((e) => h('tr', { dataset: { txn: e.txn } },
        h('th', { scope: 'row', 'data-label': ENTRIES[0] }, timeTag(e.at)),
        h('td', { 'data-label': ENTRIES[1] }, entryText(e, me)),
        h('td', { 'data-label': ENTRIES[2], class: e.amount < 0 ? 'amount negative' : 'amount' }, moneyText(e.amount, display)))))))
      : h('p', { class: 'muted' }, 'No entries yet.'));
    await loadJobs(null);
  } catch (e) {
    alerts.show(e, 'The billing could not be loaded');
  }
  return undefined;
}

function chargeRow(job, display) {
  const cost = job.cost;
  const cell = (i, ...content) => h('td', { 'data-label': JOBS[i] }, ...content);
  return h('tr', { dataset: { job: String(job.id) } },
    h('th', { scope: 'row', 'data-label': JOBS[0] }, h('a', { href: `#/jobs/${job.id}` }, `Job ${job.id}`)),
    cell(1, job.app),
    cell(2, badge(job.state)),
    cell(3, cost ? moneyText(cost.quote, display) : '—'),
    cell(4, cost ? [moneyText(cost.charged, display), TERMINAL.has(job.state) ? null : ' so far'] : '—'));
}
