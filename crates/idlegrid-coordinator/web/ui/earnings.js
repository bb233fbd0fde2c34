// Device owners' money: what their devices earned (on the balance, or held until verified),
// where each amount came from, payouts to ask for and how the operator settled them.

import { api } from './api.js';
import { alertSlot, announce, badge, chunkNumber, counts, field, h, heading, redraw, replace, timeTag } from './dom.js';
import { creditDisplay, moneyText, moneyTile, parseCredits, rateText } from './money.js';

/** What an entry of the earnings was, in words. */
const KINDS = {
  earned: 'Earned',
  released: 'Released after checking',
  revoked: 'Taken back (forged result)',
  forfeited: 'Forfeited (forged result)',
  payout: 'Paid out',
};

export async function earningsView(main, _params, { isCurrent }) {
  main.append(heading('Earnings'));
  const alerts = alertSlot();
  const rate = h('p', { class: 'muted', id: 'rate' });
  const summary = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const payouts = h('div');
  const historyBody = h('tbody');
  const historyEmpty = h('p', { class: 'muted', hidden: true }, 'Nothing yet: what your devices earn shows here.');
  const older = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'older-earnings' }, 'Older entries');

  const amount = h('input', { type: 'text', name: 'amount', inputmode: 'decimal', autocomplete: 'off', required: true, spellcheck: 'false' });
  const amountField = field('Amount (credits)', amount, 'Up to what is available.');
  const hint = amountField.wrap.querySelector('.hint');
  const formAlerts = alertSlot();
  const request = h('button', { type: 'submit' }, 'Request payout');
  const form = h('form', { class: 'card narrow', novalidate: true, 'aria-labelledby': 'payout-h' },
    h('h2', { id: 'payout-h' }, 'Request a payout'),
    h('p', { class: 'small muted' }, 'The grid’s operator pays it from your balance and settles it here, with their payment reference.'),
    amountField.wrap, formAlerts.el, h('div', { class: 'actions left' }, request));

  main.append(rate, alerts.el,
    h('section', { class: 'card', 'aria-labelledby': 'balance-h' }, h('h2', { id: 'balance-h' }, 'Balance'), summary),
    form,
    h('section', { class: 'card', 'aria-labelledby': 'payouts-h' }, h('h2', { id: 'payouts-h' }, 'Payouts'), payouts),
    h('section', { class: 'card', 'aria-labelledby': 'history-h' }, h('h2', { id: 'history-h' }, 'History'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'stack earnings' },
        h('caption', { class: 'sr-only' }, 'What your devices earned and what was paid out, newest first'),
        h('thead', {}, h('tr', {}, HISTORY.map((t) => h('th', { scope: 'col' }, t)))),
        historyBody)),
      historyEmpty, h('div', { class: 'actions left' }, older)));

  let display = null;
  let available = 0;
  let nextBefore = null;

  /** The balance and the payouts; the first page of the history too when `history`. */
  async function load({ history = false } = {}) {
    try {
      const [earnings, list, shown] = await Promise.all([api('/v1/owner/earnings'), api('/v1/owner/payouts'), creditDisplay()]);
      if (!isCurrent()) return;
      display = shown;
      available = earnings.available;
      rate.textContent = rateText(display);
      hint.textContent = `Up to what is available: ${moneyText(available, display)}. Up to 6 decimals, like 12.5 or 0.000001.`;
      replace(summary, counts([
        ['Balance', moneyTile(earnings.balance, display)],
        ['Held until checked', moneyTile(earnings.held, display)],
        ['Payouts asked for', moneyTile(earnings.requested, display)],
        ['Available', moneyTile(earnings.available, display)],
      ]), h('p', { class: 'small muted' }, 'Earnings of results not yet confirmed by another owner’s are held for a while before they reach the balance.'));
      redraw(payouts, payoutsTable(list.payouts, display));
      if (history) {
        historyBody.replaceChildren();
        showHistory(earnings);
      }
      alerts.clear();
    } catch (e) {
      alerts.show(e, 'The earnings could not be loaded');
    }
  }

  function showHistory(page) {
    for (const entry of page.entries) historyBody.append(historyRow(entry, display));
    nextBefore = page.next_before ?? null;
    older.hidden = nextBefore === null;
    historyEmpty.hidden = historyBody.children.length > 0;
  }

  older.addEventListener('click', async () => {
    older.disabled = true;
    try {
      const first = historyBody.children.length;
      showHistory(await api(`/v1/owner/earnings?before=${nextBefore}`));
      announce(`${historyBody.children.length - first} older entries shown.`);
      if (older.hidden) historyBody.children[first]?.querySelector('th')?.focus();
    } catch (e) {
      alerts.show(e, 'Older entries could not be loaded');
    } finally {
      older.disabled = false;
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    formAlerts.clear();
    amount.removeAttribute('aria-invalid');
    let micros;
    try {
      micros = parseCredits(amount.value);
      if (micros <= 0) throw new Error('A payout is more than 0 credits.');
      if (micros > available) throw new Error(`That is more than is available: ${moneyText(available, display)}.`);
    } catch (e) {
      amount.setAttribute('aria-invalid', 'true');
      formAlerts.show(e);
      amount.focus();
      return;
    }
    request.disabled = true;
    try {
      const payout = await api('/v1/owner/payouts', { method: 'POST', body: { amount: micros } });
      form.reset();
      announce(`Asked for a payout of ${moneyText(payout.amount, display)}.`);
      await load();
    } catch (e) {
      formAlerts.show(e, 'The payout was not requested');
      amount.focus();
    } finally {
      request.disabled = false;
    }
  });

  await load({ history: true });
  // Payouts are settled and earnings come in meanwhile: the balance and the payouts follow.
  const timer = setInterval(() => load(), 10_000);
  return () => clearInterval(timer);
}

const HISTORY = ['When', 'What', 'Device', 'Job', 'Chunk', 'Amount'];

function historyRow(e, display) {
  const cell = (i, ...content) => h('td', { 'data-label': HISTORY[i] }, ...content);
  return h('tr', { dataset: { entry: String(e.id), kind: e.kind } },
    h('th', { scope: 'row', 'data-label': HISTORY[0], tabindex: '-1' }, timeTag(e.at)),
    cell(1, KINDS[e.kind] || e.txn, e.held ? h('span', { class: 'muted' }, ' (held)') : null),
    cell(2, e.device ?? '—'),
    cell(3, e.job === null || e.job === undefined ? '—' : `Job ${e.job}`),
    cell(4, e.chunk_index === null || e.chunk_index === undefined ? '—' : `chunk ${chunkNumber(e.chunk_index)}`),
    h('td', { 'data-label': HISTORY[5], class: e.amount < 0 ? 'amount negative' : 'amount' }, moneyText(e.amount, display)));
}

const PAYOUTS = ['Asked for', 'Amount', 'State', 'Settled', 'Reference', 'Note'];

function payoutsTable(payouts, display) {
  if (!payouts.length) return h('p', { class: 'muted' }, 'No payouts yet.');
  const cell = (i, ...content) => h('td', { 'data-label': PAYOUTS[i] }, ...content);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'stack payouts' },
    h('caption', { class: 'sr-only' }, 'Your payouts, newest first'),
    h('thead', {}, h('tr', {}, PAYOUTS.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, payouts.map((p) => h('tr', { dataset: { payout: String(p.id), state: p.state } },
      h('th', { scope: 'row', 'data-label': PAYOUTS[0] }, timeTag(p.requested_at)),
      cell(1, moneyText(p.amount, display)),
      cell(2, badge(p.state)),
      cell(3, p.settled_at ? timeTag(p.settled_at) : '—'),
      cell(4, p.reference ?? '—'),
      cell(5, p.note ?? '—'))))));
}
