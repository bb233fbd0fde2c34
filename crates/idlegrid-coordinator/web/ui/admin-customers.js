// Operators: the grid's customers — find them (by state and name), create one (its API key
// shown once), suspend or resume, set quotas, add credit, delete.

import { api } from './api.js';
import { alertSlot, announce, badge, counted, field, formatBytes, h, heading, redraw, replace, timeTag } from './dom.js';
import { FieldError, formDialog } from './dialog.js';
import { secretOnce } from './copy.js';
import { creditDisplay, moneyText, parseCredits, rateText } from './money.js';
import { accountActions, filterForm, filtersOf, queryString } from './admin.js';

const PAGE = '#/admin/customers';
const GIB = 1024 ** 3;

/** The three quotas: field name, label, hint, and how a typed value becomes the API's. */
const QUOTAS = [
  { name: 'max_running_jobs', label: 'Most jobs at once', hint: 'Jobs submitted and not yet ended.', parse: (v) => wholeNumber(v, 'max_running_jobs'), show: (n) => String(n) },
  { name: 'max_stored_bytes', label: 'Most data kept (GiB)', hint: 'Inputs and outputs together; decimals allowed.', parse: (v) => gibibytes(v), show: (n) => String(Math.round((n / GIB) * 1000) / 1000) },
  { name: 'requests_per_sec', label: 'Requests a second', hint: 'Over all its keys; bursts of twice that.', parse: (v) => wholeNumber(v, 'requests_per_sec'), show: (n) => String(n) },
];

function wholeNumber(text, name) {
  if (!/^\d+$/.test(text)) throw new FieldError(name, 'A quota is a whole number (or empty: the grid’s default).');
  return Number(text);
}

function gibibytes(text) {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(n)) throw new FieldError('max_stored_bytes', 'Type a number of GiB, like 10 or 0.5 (or leave it empty).');
  return Math.round(n * GIB);
}

/** Typed quotas as the API's: empty fields are `null` (the grid's default). */
function quotasFrom(values) {
  return Object.fromEntries(QUOTAS.map((q) => {
    const text = String(values[q.name] ?? '').trim();
    return [q.name, text ? q.parse(text) : null];
  }));
}

function quotaText(quotas) {
  const parts = [
    quotas.max_running_jobs !== null && quotas.max_running_jobs !== undefined ? `${quotas.max_running_jobs} jobs at once` : null,
    quotas.max_stored_bytes !== null && quotas.max_stored_bytes !== undefined ? `${formatBytes(quotas.max_stored_bytes)} kept` : null,
    quotas.requests_per_sec !== null && quotas.requests_per_sec !== undefined ? `${quotas.requests_per_sec} requests/s` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'grid defaults';
}

export async function customersView(main, [query], { isCurrent }) {
  main.append(heading('Customers'));
  const alerts = alertSlot();
  const rate = h('p', { class: 'muted' });
  const shownOnce = h('div');
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  let filters = filtersOf(query);
  let display = null;

  const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', maxlength: 200, required: true });
  const quotaInputs = QUOTAS.map((q) => h('input', { type: 'text', name: q.name, inputmode: q.name === 'max_stored_bytes' ? 'decimal' : 'numeric', autocomplete: 'off' }));
  const createAlerts = alertSlot();
  const create = h('button', { type: 'submit' }, 'Create customer');
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'new-customer-h' },
    h('h2', { id: 'new-customer-h' }, 'New customer'),
    field('Name', name, 'Unique, 1 to 200 characters.').wrap,
    h('fieldset', {}, h('legend', {}, 'Quotas (empty: the grid’s defaults)'),
      h('div', { class: 'filter-fields' }, QUOTAS.map((q, i) => field(q.label, quotaInputs[i], q.hint).wrap))),
    createAlerts.el, h('div', { class: 'actions left' }, create));

  main.append(rate, filterForm({
    page: PAGE, values: filters,
    fields: [
      { name: 'state', label: 'State', options: [['', 'Active and suspended'], ['active', 'Active'], ['suspended', 'Suspended'], ['deleted', 'Deleted']] },
      { name: 'name', label: 'Name contains' },
    ],
    onApply: (chosen) => { filters = chosen; load({ say: true }); },
  }), alerts.el, shownOnce,
  h('section', { class: 'card', 'aria-labelledby': 'customers-h' }, h('h2', { id: 'customers-h' }, 'Customers'), list), form);

  /** Draws the list; `say`: announces how many match (after the filters changed). */
  async function load({ say = false } = {}) {
    try {
      const [{ customers }, shown] = await Promise.all([
        api(`/v1/admin/customers${queryString(filters)}`), creditDisplay()]);
      if (!isCurrent()) return;
      display = shown;
      rate.textContent = rateText(display);
      alerts.clear();
      redraw(list, customers.length ? table(customers) : h('p', { class: 'muted' }, 'No customers match.'));
      if (say) announce(`${counted(customers.length, 'customer')} shown.`);
    } catch (e) {
      alerts.show(e, 'The customers could not be loaded');
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    createAlerts.clear();
    for (const input of [name, ...quotaInputs]) input.removeAttribute('aria-invalid');
    let quotas;
    try {
      if (!name.value.trim()) throw new FieldError('name', 'Give the customer a name.');
      quotas = quotasFrom(Object.fromEntries(quotaInputs.map((input) => [input.name, input.value])));
    } catch (e) {
      const input = [name, ...quotaInputs].find((i) => i.name === e.field);
      createAlerts.show(e);
      if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
      return;
    }
    create.disabled = true;
    try {
      const made = await api('/v1/admin/customers', { method: 'POST', body: { name: name.value.trim(), quotas } });
      form.reset();
      replace(shownOnce, secretOnce({ title: `API key of the new customer “${made.customer.name}”`, secret: made.api_key, what: 'API key' }));
      announce(`Created the customer ${made.customer.name}.`);
      await load();
    } catch (e) {
      createAlerts.show(e, 'The customer was not created');
      name.focus();
    } finally {
      create.disabled = false;
    }
  });

  async function editQuotas(customer) {
    await formDialog({
      title: `Quotas of ${customer.name}`,
      text: 'Empty: no limit of its own (the grid’s defaults hold).',
      fields: QUOTAS.map((q) => ({
        name: q.name, label: q.label, hint: q.hint, inputmode: 'decimal',
        value: customer.quotas[q.name] === null || customer.quotas[q.name] === undefined ? '' : q.show(customer.quotas[q.name]),
      })),
      submit: 'Save quotas',
      onSubmit: async (values) => {
        await api(`/v1/admin/customers/${customer.id}`, { method: 'PATCH', body: { quotas: quotasFrom(values) } });
        announce(`Saved the quotas of ${customer.name}.`);
        await load();
      },
    });
  }

  async function deposit(customer) {
    await formDialog({
      title: `Add credit to ${customer.name}`,
      text: `What the customer paid you, in credits (${rateText(display)}).`,
      fields: [
        { name: 'amount', label: 'Amount (credits)', inputmode: 'decimal', required: true },
        { name: 'reference', label: 'Payment reference', hint: 'Your reference for the payment: a deposit with a reference used before is not posted again.', required: true },
      ],
      submit: 'Add credit',
      onSubmit: async (values) => {
        let amount;
        try { amount = parseCredits(values.amount); } catch (e) { throw new FieldError('amount', e.message); }
        if (amount <= 0) throw new FieldError('amount', 'A deposit is more than 0 credits.');
        if (!values.reference.trim()) throw new FieldError('reference', 'Give the payment’s reference.');
        const receipt = await api(`/v1/customers/${customer.id}/deposits`, { method: 'POST', body: { amount, reference: values.reference.trim() } });
        announce(receipt.posted ? `Added ${moneyText(amount, display)} to ${customer.name}.` : `That reference was used before: nothing was added to ${customer.name}.`);
        await load();
      },
    });
  }

  function table(customers) {
    return h('table', { class: 'stack accounts' },
      h('caption', { class: 'sr-only' }, 'Customers, newest first'),
      h('thead', {}, h('tr', {}, ['Customer', 'State', 'Created', 'Balance', 'Jobs running', 'Data kept', 'Quotas', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, customers.map((c) => {
        const { toggle, remove } = accountActions('customers', c, { done: load, alerts, noun: 'customer' });
        return h('tr', { dataset: { customer: String(c.id), state: c.state } },
        h('th', { scope: 'row', 'data-label': 'Customer' }, c.name, h('span', { class: 'muted small' }, ` #${c.id}`)),
        h('td', { 'data-label': 'State' }, badge(c.state)),
        h('td', { 'data-label': 'Created' }, timeTag(c.created_at)),
        h('td', { 'data-label': 'Balance' }, moneyText(c.balance, display)),
        h('td', { 'data-label': 'Jobs running' }, String(c.running_jobs)),
        h('td', { 'data-label': 'Data kept' }, formatBytes(c.stored_bytes)),
        h('td', { 'data-label': 'Quotas' }, quotaText(c.quotas)),
        h('td', { 'data-label': 'Actions' }, c.state === 'deleted' ? '—' : h('div', { class: 'row-actions' },
          toggle,
          h('button', { type: 'button', class: 'secondary small', dataset: { key: `quotas-${c.id}` }, 'aria-label': `Quotas of ${c.name}`, onclick: () => editQuotas(c) }, 'Quotas'),
          h('button', { type: 'button', class: 'secondary small', dataset: { key: `deposit-${c.id}` }, 'aria-label': `Add credit to ${c.name}`, onclick: () => deposit(c) }, 'Add credit'),
          remove)));
      })));
  }

  await load();
  return undefined;
}
