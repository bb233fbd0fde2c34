// Operators: the grid's device owners — find them (by state and name), create one (its
// enrollment token shown once; optionally a customer's own fleet), suspend or resume, delete.

import { api } from './api.js';
import { alertSlot, announce, badge, counted, field, h, heading, redraw, replace, timeTag } from './dom.js';
import { secretOnce } from './copy.js';
import { creditDisplay, moneyText, rateText } from './money.js';
import { accountActions, accountNames, accountOptions, filterForm, filtersOf, queryString } from './admin.js';

const PAGE = '#/admin/owners';
const HEAD = ['Owner', 'State', 'Created', 'Customer’s fleet', 'Balance', 'Devices', 'Actions'];

export async function ownersView(main, [query], { isCurrent }) {
  main.append(heading('Owners'));
  const alerts = alertSlot();
  const rate = h('p', { class: 'muted' });
  const shownOnce = h('div');
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  let filters = filtersOf(query);
  let display = null;
  let customers = new Map();

  const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', maxlength: 200, required: true });
  const customer = h('select', { name: 'customer' }, h('option', { value: '' }, 'None: an independent owner'));
  const createAlerts = alertSlot();
  const create = h('button', { type: 'submit' }, 'Create owner');
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'new-owner-h' },
    h('h2', { id: 'new-owner-h' }, 'New device owner'),
    field('Name', name, 'Unique, 1 to 200 characters.').wrap,
    field('Customer', customer, 'A customer whose own fleet these devices are: they run its jobs and do not count as independent of each other’s results.').wrap,
    createAlerts.el, h('div', { class: 'actions left' }, create));

  main.append(rate, filterForm({
    page: PAGE, values: filters,
    fields: [
      { name: 'state', label: 'State', options: [['', 'Active and suspended'], ['active', 'Active'], ['suspended', 'Suspended'], ['deleted', 'Deleted']] },
      { name: 'name', label: 'Name contains' },
    ],
    onApply: (chosen) => { filters = chosen; load({ say: true }); },
  }), alerts.el, shownOnce,
  h('section', { class: 'card', 'aria-labelledby': 'owners-h' }, h('h2', { id: 'owners-h' }, 'Device owners'), list), form);

  /** Draws the list; `say`: announces how many match (after the filters changed). */
  async function load({ say = false } = {}) {
    try {
      const [{ owners }, names, shown] = await Promise.all([
        api(`/v1/admin/owners${queryString(filters)}`), accountNames('customers'), creditDisplay()]);
      if (!isCurrent()) return;
      display = shown;
      customers = names;
      rate.textContent = rateText(display);
      const chosen = customer.value;
      replace(customer, accountOptions(customers, 'None: an independent owner').map(([value, text]) => h('option', { value, selected: value === chosen }, text)));
      alerts.clear();
      redraw(list, owners.length ? table(owners) : h('p', { class: 'muted' }, 'No owners match.'));
      if (say) announce(`${counted(owners.length, 'owner')} shown.`);
    } catch (e) {
      alerts.show(e, 'The owners could not be loaded');
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    createAlerts.clear();
    name.removeAttribute('aria-invalid');
    if (!name.value.trim()) {
      name.setAttribute('aria-invalid', 'true');
      createAlerts.show('Give the owner a name.');
      name.focus();
      return;
    }
    create.disabled = true;
    try {
      const body = { name: name.value.trim() };
      if (customer.value) body.customer = Number(customer.value);
      const made = await api('/v1/admin/owners', { method: 'POST', body });
      form.reset();
      replace(shownOnce, secretOnce({ title: `Enrollment token of the new owner “${made.name}”`, secret: made.enrollment_token, what: 'enrollment token' }));
      announce(`Created the owner ${made.name}.`);
      await load();
    } catch (e) {
      createAlerts.show(e, 'The owner was not created');
      name.focus();
    } finally {
      create.disabled = false;
    }
  });

  function table(owners) {
    const cell = (i, ...content) => h('td', { 'data-label': HEAD[i] }, ...content);
    return h('div', { class: 'table-wrap' }, h('table', { class: 'stack accounts' },
      h('caption', { class: 'sr-only' }, 'Device owners, newest first'),
      h('thead', {}, h('tr', {}, HEAD.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, owners.map((o) => {
        const { toggle, remove } = accountActions('owners', o, { done: load, alerts, noun: 'owner' });
        const fleet = o.customer === null || o.customer === undefined ? '—' : customers.get(o.customer) ?? `customer ${o.customer}`;
        return h('tr', { dataset: { owner: String(o.id), state: o.state } },
          h('th', { scope: 'row', 'data-label': HEAD[0] }, o.name, h('span', { class: 'muted small' }, ` #${o.id}`)),
          cell(1, badge(o.state)),
          cell(2, timeTag(o.created_at)),
          cell(3, fleet),
          cell(4, moneyText(o.balance, display)),
          cell(5, h('a', { href: `#/admin/devices?owner=${o.id}`, 'aria-label': `Devices of ${o.name}` }, 'Devices')),
          cell(6, o.state === 'deleted' ? '—' : h('div', { class: 'row-actions' }, toggle, remove)));
      }))));
  }

  await load();
  return undefined;
}
