// Operators: every device on the grid, by status and by owner.

import { api } from './api.js';
import { alertSlot, announce, badge, counted, h, heading, redraw, timeTag } from './dom.js';
import { accountNames, accountOptions, filterForm, filtersOf, queryString } from './admin.js';

const PAGE = '#/admin/devices';
const STATUSES = ['busy', 'online', 'offline', 'paused', 'quarantined'];
const HEAD = ['Device', 'Owner', 'Status', 'Last seen', 'Valid', 'Invalid'];

export async function gridDevicesView(main, [query], { isCurrent }) {
  main.append(heading('Devices'));
  const alerts = alertSlot();
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  let filters = filtersOf(query);
  let owners;
  try {
    owners = await accountNames('owners');
  } catch (e) {
    main.append(alerts.el);
    alerts.show(e, 'The owners could not be loaded');
    return undefined;
  }
  if (!isCurrent()) return undefined;
  main.append(filterForm({
    page: PAGE, values: filters,
    fields: [
      { name: 'status', label: 'Status', options: [['', 'Any'], ...STATUSES.map((s) => [s, s])] },
      { name: 'owner', label: 'Owner', options: accountOptions(owners) },
    ],
    onApply: (chosen) => { filters = chosen; load({ say: true }); },
  }), alerts.el, h('section', { class: 'card', 'aria-labelledby': 'devices-h' }, h('h2', { id: 'devices-h' }, 'Devices'), list));

  /** Draws the list; `say`: announces how many match (after the filters changed). */
  async function load({ say = false } = {}) {
    try {
      const { devices } = await api(`/v1/admin/devices${queryString(filters)}`);
      if (!isCurrent()) return;
      alerts.clear();
      redraw(list, devices.length ? [h('p', { class: 'muted small' }, counted(devices.length, 'device')), table(devices)]
        : h('p', { class: 'muted' }, 'No devices match.'));
      if (say) announce(`${counted(devices.length, 'device')} shown.`);
    } catch (e) {
      alerts.show(e, 'The devices could not be loaded');
    }
  }

  await load();
  const timer = setInterval(() => load(), 10_000);
  return () => clearInterval(timer);
}

function table(devices) {
  const cell = (i, ...content) => h('td', { 'data-label': HEAD[i] }, ...content);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'stack grid-devices' },
    h('caption', { class: 'sr-only' }, 'Devices of the grid, oldest first'),
    h('thead', {}, h('tr', {}, HEAD.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, devices.map((d) => h('tr', { dataset: { device: String(d.id), status: d.status } },
      h('th', { scope: 'row', 'data-label': HEAD[0] }, d.name, h('span', { class: 'muted small' }, ` #${d.id}`)),
      cell(1, h('a', { href: `#/admin/devices?owner=${d.owner}`, 'aria-label': `Devices of ${d.owner_name}` }, d.owner_name)),
      cell(2, badge(d.status)),
      cell(3, timeTag(d.last_seen)),
      cell(4, String(d.valid)),
      cell(5, String(d.invalid)))))));
}
