// Operators: device owners' payouts — those asked for, to pay (with the payment's reference)
// or refuse (with a note the owner reads), and those settled.

import { api } from './api.js';
import { alertSlot, announce, badge, counted, h, heading, redraw, timeTag } from './dom.js';
import { FieldError, formDialog } from './dialog.js';
import { creditDisplay, moneyText, rateText } from './money.js';
import { accountNames, accountOptions, filterForm, filtersOf, queryString } from './admin.js';

const PAGE = '#/admin/payouts';
const HEAD = ['Asked for', 'Owner', 'Amount', 'State', 'Settled', 'Reference', 'Note', 'Actions'];

export async function payoutsView(main, [query], { isCurrent }) {
  main.append(heading('Payouts'));
  const alerts = alertSlot();
  const rate = h('p', { class: 'muted' });
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  let filters = filtersOf(query);
  let owners;
  let display;
  try {
    [owners, display] = await Promise.all([accountNames('owners'), creditDisplay()]);
  } catch (e) {
    main.append(alerts.el);
    alerts.show(e, 'The owners could not be loaded');
    return undefined;
  }
  if (!isCurrent()) return undefined;
  rate.textContent = rateText(display);
  main.append(rate, filterForm({
    page: PAGE, values: filters,
    fields: [
      { name: 'state', label: 'State', options: [['', 'Any'], ['requested', 'Asked for (to settle)'], ['paid', 'Paid'], ['refused', 'Refused']] },
      { name: 'owner', label: 'Owner', options: accountOptions(owners) },
    ],
    onApply: (chosen) => { filters = chosen; load({ say: true }); },
  }), alerts.el, h('section', { class: 'card', 'aria-labelledby': 'payouts-h' }, h('h2', { id: 'payouts-h' }, 'Payouts'), list));

  /** Draws the list; `say`: announces how many match (after the filters changed). */
  async function load({ say = false } = {}) {
    try {
      const { payouts } = await api(`/v1/admin/payouts${queryString(filters)}`);
      if (!isCurrent()) return;
      alerts.clear();
      redraw(list, payouts.length ? table(payouts) : h('p', { class: 'muted' }, 'No payouts match.'));
      if (say) announce(`${counted(payouts.length, 'payout')} shown.`);
    } catch (e) {
      alerts.show(e, 'The payouts could not be loaded');
    }
  }

  function settle(payout, paid) {
    const owner = owners.get(payout.owner) ?? `owner ${payout.owner}`;
    const amount = moneyText(payout.amount, display);
    return formDialog({
      title: paid ? `Pay ${amount} to ${owner}` : `Refuse the payout of ${amount} to ${owner}`,
      text: paid ? 'Pay it first, then record it here: the amount moves from the owner’s balance.'
        : 'Nothing moves; the owner reads your note.',
      fields: paid
        ? [{ name: 'reference', label: 'Payment reference', hint: 'Your reference for the payment (a bank transfer’s, say).', required: true },
          { name: 'note', label: 'Note to the owner (optional)' }]
        : [{ name: 'note', label: 'Note to the owner', hint: 'Why it is refused.', required: true }],
      submit: paid ? 'Record as paid' : 'Refuse payout',
      onSubmit: async (values) => {
        const reference = (values.reference || '').trim();
        const note = (values.note || '').trim();
        if (paid && !reference) throw new FieldError('reference', 'Give the payment’s reference.');
        if (!paid && !note) throw new FieldError('note', 'Tell the owner why.');
        const body = { paid, note: note || null };
        if (paid) body.reference = reference;
        await api(`/v1/admin/payouts/${payout.id}/settle`, { method: 'POST', body });
        announce(paid ? `Recorded the payout of ${amount} to ${owner} as paid.` : `Refused the payout of ${amount} to ${owner}.`);
        await load();
      },
    });
  }

  function table(payouts) {
    const cell = (i, ...content) => h('td', { 'data-label': HEAD[i] }, ...content);
    return h('div', { class: 'table-wrap' }, h('table', { class: 'stack payouts' },
      h('caption', { class: 'sr-only' }, 'Payouts, newest first'),
      h('thead', {}, h('tr', {}, HEAD.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, payouts.map((p) => {
        const owner = owners.get(p.owner) ?? `owner ${p.owner}`;
        return h('tr', { dataset: { payout: String(p.id), state: p.state } },
          h('th', { scope: 'row', 'data-label': HEAD[0] }, timeTag(p.requested_at)),
          cell(1, owner),
          cell(2, moneyText(p.amount, display)),
          cell(3, badge(p.state)),
          cell(4, p.settled_at ? timeTag(p.settled_at) : '—'),
          cell(5, p.reference ?? '—'),
          cell(6, p.note ?? '—'),
          cell(7, p.state !== 'requested' ? '—' : h('div', { class: 'row-actions' },
            h('button', { type: 'button', class: 'small', dataset: { key: `pay-${p.id}` }, 'aria-label': `Pay ${moneyText(p.amount, display)} to ${owner}`, onclick: () => settle(p, true) }, 'Pay'),
            h('button', { type: 'button', class: 'secondary small', dataset: { key: `refuse-${p.id}` }, 'aria-label': `Refuse the payout to ${owner}`, onclick: () => settle(p, false) }, 'Refuse'))));
      }))));
  }

  await load();
  const timer = setInterval(() => load(), 10_000);
  return () => clearInterval(timer);
}
