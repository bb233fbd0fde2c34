// Device owners: their devices (rename, pause or resume, remove), results totals, and how to
// add a device.

import { api } from './api.js';
import { alertSlot, announce, badge, counts, h, heading, redraw, replace, timeTag } from './dom.js';
import { FieldError, confirmDialog, formDialog } from './dialog.js';
import { copyButton } from './copy.js';
import { creditDisplay, moneyText, moneyTile } from './money.js';
import { shown } from './text.js';

export async function devicesView(main, _params, { isCurrent }) {
  main.append(heading('Devices'));
  const alerts = alertSlot();
  const totals = h('div');
  const body = h('div');
  main.append(alerts.el, totals, h('section', { class: 'card', 'aria-labelledby': 'list-h' }, h('h2', { id: 'list-h' }, 'Your devices'), body), addDevice());

  let owner = null;
  async function load() {
    try {
      const [answer, display] = await Promise.all([api('/v1/owner/devices'), creditDisplay()]);
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
          ['Earned so far', moneyTile(t.earned ?? 0, display)]]),
        h('p', { class: 'small' }, h('a', { href: '#/earnings' }, 'Earnings and payouts'))));
      redraw(body, answer.devices.length ? devicesTable(answer.devices, display, { load, alerts })
        : h('p', { class: 'muted' }, 'No devices yet: add one with the command below.'));
    } catch (e) {
      alerts.show(e, 'The devices could not be loaded');
    }
  }
  await load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}

/**
 * How to add a device: the worker command, with an enrollment token made for it on request
 * (the dashboard keeps a session, not the token it was signed in with), or a browser linked
 * with a one-time code.
 */
function addDevice() {
  const command = h('code', { class: 'command-text' }, `idlegrid worker --coordinator ${location.origin} --token <enrollment token>`);
  const { button: copy, said } = copyButton(command);
  const made = h('div', { 'aria-live': 'polite' });
  const errors = alertSlot();
  const make = h('button', { type: 'button', class: 'secondary', id: 'make-device-token' }, 'Make a token for this command');
  make.addEventListener('click', async () => {
    errors.clear();
    make.disabled = true;
    try {
      const name = `worker command, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
      const token = await api('/v1/secrets', { method: 'POST', body: { name } });
      command.textContent = `idlegrid worker --coordinator ${location.origin} --token ${token.secret}`;
      replace(made, h('p', { class: 'notice' }, h('strong', {}, 'Keep it now: '),
        `the token in the command is shown only this once. It is the enrollment token “${token.name}” on the `,
        h('a', { href: '#/keys' }, 'Keys'), ' page, where you can revoke it.'));
      announce('Made an enrollment token: the command holds it.');
      copy.focus();
    } catch (e) {
      errors.show(e, 'No token');
    } finally {
      make.disabled = false;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'add-h' },
    h('h2', { id: 'add-h' }, 'Add a device'),
    h('p', {}, 'On the device, with idlegrid installed, run this with one of your enrollment tokens:'),
    h('div', { class: 'command' }, command, copy),
    said,
    h('div', { class: 'actions left' }, make), errors.el, made,
    h('p', { class: 'muted small' }, 'Add --slots N to run N tasks at once. An enrollment token lets whoever holds it add devices to your account: keep it secret.'),
    browserLink());
}

/** A phone or any browser joins with a one-time link code: no install, no token on it. */
function browserLink() {
  const result = h('div', { id: 'link-code', 'aria-live': 'polite' });
  let qrUrl = null;
  const errors = alertSlot();
  const button = h('button', {
    type: 'button', class: 'secondary',
    onclick: async () => {
      errors.clear();
      try {
        const origin = encodeURIComponent(location.origin);
        const code = await api(`/v1/owner/link-codes?origin=${origin}`, { method: 'POST' });
        const url = `${location.origin}${code.contribute_path}`;
        // The coordinator draws the QR code (an SVG); it is shown as an image from a blob
        // URL, never as markup in the page.
        if (qrUrl) URL.revokeObjectURL(qrUrl);
        qrUrl = code.qr_svg ? URL.createObjectURL(new Blob([code.qr_svg], { type: 'image/svg+xml' })) : null;
        replace(result,
          qrUrl ? h('img', { src: qrUrl, id: 'link-qr', class: 'qr', width: 200, height: 200, alt: `QR code of the link ${url}` }) : null,
          h('p', {}, 'Scan the code with the phone, or open this link in the browser of the device: ', h('a', { href: url, id: 'link-url' }, url)),
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

/** What a device runs on, in a few words. */
function hardwareText(c) {
  return [c.cores ? `${c.cores} cores` : null, c.memory_mb ? `${Math.round(c.memory_mb / 1024 * 10) / 10} GiB` : null,
    [c.os, c.arch].filter(Boolean).join('/') || null, c.runtime === 'browser' ? 'in a browser' : null,
    c.python ? `Python ${c.python}` : null, c.ffmpeg ? `ffmpeg ${c.ffmpeg}` : null]
    .filter(Boolean).join(' · ');
}

/** The buttons of a device: rename, pause or resume, remove; `load()` draws the list again. */
function deviceActions(d, { load, alerts }) {
  const label = d.name || `Device ${d.id}`;
  const paused = d.status === 'paused';
  const change = async (body, said) => {
    alerts.clear();
    try {
      await api(`/v1/owner/devices/${d.id}`, { method: 'PATCH', body });
      announce(said);
      await load();
    } catch (e) {
      alerts.show(e, `${label} was not changed`);
    }
  };
  const rename = h('button', { type: 'button', class: 'secondary small', dataset: { key: `rename-${d.id}` }, 'aria-label': `Rename ${label}` }, 'Rename');
  rename.addEventListener('click', () => formDialog({
    title: `Rename ${label}`,
    fields: [{ name: 'name', label: 'New name', value: d.name, hint: '1 to 100 characters.', required: true }],
    submit: 'Rename',
    onSubmit: async ({ name }) => {
      if (!name.trim()) throw new FieldError('name', 'Give the device a name.');
      await api(`/v1/owner/devices/${d.id}`, { method: 'PATCH', body: { name: name.trim() } });
      announce(`Renamed ${label} to ${name.trim()}.`);
      await load();
    },
  }));
  const pause = h('button', {
    type: 'button', class: 'secondary small', dataset: { key: `pause-${d.id}` }, 'aria-label': `${paused ? 'Resume' : 'Pause'} ${label}`,
    onclick: () => change({ paused: !paused }, paused ? `${label} is resumed: it gets work again.`
      : `${label} is paused: it finishes what it holds, then gets no new work until resumed.`),
  }, paused ? 'Resume' : 'Pause');
  const remove = h('button', { type: 'button', class: 'danger small', dataset: { key: `remove-${d.id}` }, 'aria-label': `Remove ${label}` }, 'Remove');
  remove.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Remove ${label}?`,
      text: ['Its token stops working at once: it gets no more work, and comes back only by registering again with an enrollment token. Its results and earnings stay.'],
      yes: 'Remove device',
    });
    if (!ok) return;
    alerts.clear();
    try {
      await api(`/v1/owner/devices/${d.id}`, { method: 'DELETE' });
      announce(`${label} is removed.`);
      await load();
    } catch (e) {
      alerts.show(e, `${label} was not removed`);
    }
  });
  return h('div', { class: 'row-actions' }, rename, pause, remove);
}

/** A device's results in a few words: "150 valid · 0 invalid · 0 timed out · streak 150". */
function resultsText(d) {
  return `${d.valid ?? 0} valid · ${d.invalid ?? 0} invalid · ${d.timed_out ?? 0} timed out · streak ${d.streak ?? 0}`;
}

function devicesTable(devices, display, actions) {
  const head = ['Device', 'Status', 'Last seen', 'Hardware', 'Running', 'Results', 'Earned', 'Actions'];
  const cell = (i, ...content) => h('td', { 'data-label': head[i] }, ...content);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'devices stack' },
    h('caption', { class: 'sr-only' }, 'Your devices and their results'),
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, devices.map((d) => {
      const c = d.capabilities || {};
      return h('tr', { dataset: { device: String(d.id), status: d.status } },
        h('th', { scope: 'row', 'data-label': head[0] }, d.name || `Device ${d.id}`, h('div', { class: 'muted small' }, 'registered ', timeTag(d.registered_at))),
        cell(1, badge(d.status)),
        cell(2, timeTag(d.last_seen)),
        cell(3, hardwareText(c) || '—'),
        cell(4, `${d.running ?? 0} of ${c.slots ?? '—'} slots`),
        cell(5, resultsText(d)),
        cell(6, moneyText(d.earned ?? 0, display)),
        cell(7, deviceActions(d, actions)));
    }))));
}
