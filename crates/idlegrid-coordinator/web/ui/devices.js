// Device owners: their devices, results totals, and how to add a device.

import { api, session } from './api.js';
import { alertSlot, announce, badge, counts, formatCredits, h, heading, replace, timeTag, uid } from './dom.js';
import { shown } from './text.js';

export async function devicesView(main, _params, { isCurrent }) {
  main.append(heading('Devices'));
  const alerts = alertSlot();
  const totals = h('div');
  const body = h('div');
  const command = `idlegrid worker --coordinator ${location.origin} --token ${session.secret}`;
  const commandId = uid('command');
  const copyButton = h('button', { type: 'button', class: 'secondary', 'aria-describedby': commandId }, 'Copy');
  const copied = h('span', { class: 'muted', 'aria-live': 'polite' });
  copyButton.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(command);
      copied.textContent = 'Copied.';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById(commandId));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
    announce(copied.textContent);
  });
  const add = h('section', { class: 'card', 'aria-labelledby': 'add-h' },
    h('h2', { id: 'add-h' }, 'Add a device'),
    h('p', {}, 'On the device, with idlegrid installed, run:'),
    h('div', { class: 'command' }, h('code', { id: commandId, class: 'command-text' }, command), copyButton),
    copied,
    h('p', { class: 'muted small' }, 'Add --slots N to run N tasks at once. The token is your enrollment token: keep it secret.'),
    browserLink());
  main.append(alerts.el, totals, h('section', { class: 'card', 'aria-labelledby': 'list-h' }, h('h2', { id: 'list-h' }, 'Your devices'), body), add);

  let owner = null;
  async function load() {
    try {
      const answer = await api('/v1/owner/devices');
      if (!isCurrent()) return;
      alerts.clear();
      if (!owner) {
        owner = answer.owner;
        if (owner.name) main.querySelector('#page-title').textContent = shown(`Devices of the owner “${owner.name}”`);
      }
      const t = answer.totals || {};
      replace(totals, h('section', { class: 'card', 'aria-labelledby': 'totals-h' }, h('h2', { id: 'totals-h' }, 'Results'),
        counts([['Devices', String(t.devices ?? answer.devices.length)],
          ['Online now', String(t.online ?? answer.devices.filter((d) => d.status === 'online' || d.status === 'busy').length)],
          ['Valid results', String(t.valid ?? 0)], ['Invalid results', String(t.invalid ?? 0)], ['Timed out', String(t.timed_out ?? 0)],
          ['Earned so far', formatCredits(t.earned ?? 0)]])));
      replace(body, answer.devices.length ? devicesTable(answer.devices)
        : h('p', { class: 'muted' }, 'No devices yet: add one with the command below.'));
    } catch (e) {
      alerts.show(e, 'The devices could not be loaded');
    }
  }
  await load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}

/** A phone or any browser joins with a one-time link code: no install, no token on it. */
function browserLink() {
  const result = h('div', { id: 'link-code', 'aria-live': 'polite' });
  const errors = alertSlot();
  const button = h('button', {
    type: 'button', class: 'secondary',
    onclick: async () => {
      errors.clear();
      try {
        const code = await api('/v1/owner/link-codes', { method: 'POST' });
        const url = `${location.origin}${code.contribute_path}`;
        replace(result,
          h('p', {}, 'Open this link in the browser of the device: ', h('a', { href: url, id: 'link-url' }, url)),
          h('p', {}, 'or open ', h('code', {}, `${location.origin}/contribute`), ' there and type the code ',
            h('strong', { id: 'link-code-text', class: 'code' }, code.code), '.'),
          h('p', { class: 'muted small' }, `The code works once, for ${Math.round(code.expires_in_secs / 60)} minutes.`));
        announce(`Link code ${code.code}`);
      } catch (e) {
        errors.show(e, 'No link code');
      }
    },
  }, 'Link a browser');
  return h('div', {}, h('p', {}, 'Or turn any browser into a worker, a phone too:'), button, errors.el, result);
}

function devicesTable(devices) {
  const head = ['Device', 'Status', 'Last seen', 'Hardware', 'Slots', 'Running', 'Valid', 'Invalid', 'Timed out', 'Streak', 'Earned'];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'devices' },
    h('caption', { class: 'sr-only' }, 'Your devices and their results'),
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, devices.map((d) => {
      const c = d.capabilities || {};
      const hardware = [c.cores ? `${c.cores} cores` : null, c.memory_mb ? `${Math.round(c.memory_mb / 1024 * 10) / 10} GiB` : null,
        [c.os, c.arch].filter(Boolean).join('/') || null, c.runtime === 'browser' ? 'in a browser' : null,
        c.python ? `Python ${c.python}` : null, c.ffmpeg ? `ffmpeg ${c.ffmpeg}` : null]
        .filter(Boolean).join(' · ');
      return h('tr', { dataset: { device: String(d.id) } },
        h('th', { scope: 'row' }, d.name || `Device ${d.id}`, h('div', { class: 'muted small' }, 'registered ', timeTag(d.registered_at))),
        h('td', {}, badge(d.status)),
        h('td', {}, timeTag(d.last_seen)),
        h('td', {}, hardware || '—'),
        h('td', {}, String(c.slots ?? '—')),
        h('td', {}, String(d.running ?? 0)),
        h('td', {}, String(d.valid ?? 0)),
        h('td', {}, String(d.invalid ?? 0)),
        h('td', {}, String(d.timed_out ?? 0)),
        h('td', {}, String(d.streak ?? 0)),
        h('td', {}, formatCredits(d.earned ?? 0)));
    }))));
}
