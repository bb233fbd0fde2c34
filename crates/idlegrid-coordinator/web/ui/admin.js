// Shared by the operator's pages: their filters (kept in the page's address, so a filtered
// list can be reloaded, linked and bookmarked), the names of accounts, and suspending,
// resuming or deleting a customer or a device owner.

import { api } from './api.js';
import { announce, field, h } from './dom.js';
import { confirmDialog } from './dialog.js';

/** The filters of a page's address: `#/admin/devices?owner=3` → owner=3. */
export function filtersOf(query) {
  return new URLSearchParams(query || '');
}

/**
 * A form of filters: `fields` are [{ name, label, options: [[value, text]] } (a select) or
 * { name, label } (text)], set from `values` (URLSearchParams). Sending it (the "Show"
 * button, Enter, or picking another option) calls `onApply(values)` with the non-empty ones and
 * writes them into the address without drawing the page again, so focus stays where it is.
 */
export function filterForm({ page, fields, values, onApply }) {
  const controls = fields.map((f) => {
    const control = f.options
      ? h('select', { name: f.name }, f.options.map(([value, text]) => h('option', { value, selected: value === (values.get(f.name) || '') }, text)))
      : h('input', { type: 'search', name: f.name, value: values.get(f.name) || '', autocomplete: 'off', spellcheck: 'false' });
    return control;
  });
  const form = h('form', { class: 'card filters', role: 'search', 'aria-label': 'Filters' },
    h('div', { class: 'filter-fields' }, fields.map((f, i) => field(f.label, controls[i]).wrap)),
    h('div', { class: 'actions left' }, h('button', { type: 'submit', class: 'secondary' }, 'Show')));
  const apply = () => {
    const chosen = new URLSearchParams();
    for (const control of controls) if (control.value.trim()) chosen.set(control.name, control.value.trim());
    const query = chosen.toString();
    history.replaceState(null, '', `${page}${query ? `?${query}` : ''}`);
    onApply(chosen);
  };
  form.addEventListener('submit', (event) => { event.preventDefault(); apply(); });
  for (const control of controls) if (control.tagName === 'SELECT') control.addEventListener('change', apply);
  return form;
}

/** The query string of `values`, without the empty ones, with `?` when there are any. */
export function queryString(values) {
  const query = new URLSearchParams([...values].filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString();
  return query ? `?${query}` : '';
}

/**
 * Every account of a kind (`customers` or `owners`), deleted ones too, as a Map from id to
 * name: the lists of devices, jobs and payouts name their accounts by id.
 */
export async function accountNames(kind) {
  const [live, deleted] = await Promise.all([api(`/v1/admin/${kind}`), api(`/v1/admin/${kind}?state=deleted`)]);
  return new Map([...live[kind], ...deleted[kind]].map((a) => [a.id, a.name]));
}

/** Options of a select of accounts: "any" (or `none`), then each by name. */
export function accountOptions(names, empty = 'Any') {
  return [['', empty], ...[...names].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => [String(id), `${name} (${id})`])];
}

/**
 * The buttons that suspend or resume (`toggle`), and delete (`remove`), a customer or owner
 * (`kind`: `customers` or `owners`); `done()` runs after a change, `alerts` shows a refusal.
 * A deleted account has none.
 */
export function accountActions(kind, account, { done, alerts, noun }) {
  if (account.state === 'deleted') return { toggle: null, remove: null };
  const path = `/v1/admin/${kind}/${account.id}`;
  const suspended = account.state === 'suspended';
  const toggle = h('button', {
    type: 'button', class: 'secondary small', dataset: { key: `suspend-${kind}-${account.id}` },
    'aria-label': `${suspended ? 'Resume' : 'Suspend'} ${account.name}`,
  }, suspended ? 'Resume' : 'Suspend');
  toggle.addEventListener('click', async () => {
    if (!suspended) {
      const ok = await confirmDialog({
        title: `Suspend ${account.name}?`,
        text: [kind === 'customers'
          ? 'Its keys and sessions are refused until you resume it; its jobs stay as they are.'
          : 'Its enrollment tokens and sessions are refused and its devices get no work until you resume it.'],
        yes: 'Suspend', danger: false,
      });
      if (!ok) return;
    }
    try {
      await api(path, { method: 'PATCH', body: { suspended: !suspended } });
      announce(`${account.name} is ${suspended ? 'resumed' : 'suspended'}.`);
      await done();
    } catch (e) {
      alerts.show(e, `${account.name} was not ${suspended ? 'resumed' : 'suspended'}`);
    }
  });
  const remove = h('button', {
    type: 'button', class: 'danger small', dataset: { key: `delete-${kind}-${account.id}` }, 'aria-label': `Delete ${account.name}`,
  }, 'Delete');
  remove.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Delete ${account.name}?`,
      text: [`Its keys and sessions stop working at once and the ${noun} is gone from the lists; its records stay for the books.`, 'This cannot be undone.'],
      yes: `Delete ${noun}`,
    });
    if (!ok) return;
    try {
      await api(path, { method: 'DELETE' });
      announce(`${account.name} is deleted.`);
      await done();
    } catch (e) {
      alerts.show(e, `${account.name} was not deleted`);
    }
  });
  return { toggle, remove };
}
