// The /contribute page: turns this browser into a worker of the grid. It measures what the
// browser can run (a probe in the runner: Python and FFmpeg versions, a benchmark), links the
// browser to its owner (a one-time link code, or the owner's enrollment token), then runs the
// agent (contribute-agent.js) and shows what it does: state, current task, tasks done, earnings.
// The device's token stays in this browser (localStorage), so it is the same device next time.

import { ApiError, api } from './api.js';
import { Agent, runInWorker } from './contribute-agent.js';
import { alertSlot, announce, chunkNumber, counts, field, formatCredits, h, replace, uid } from './dom.js';
import { percent } from './jobs.js';
import { browserName, system } from './platform.js';

const DEVICE = 'idlegrid.contribute.device';
const THRESHOLD = 'idlegrid.contribute.batteryThreshold';
/** Default battery level below which a discharging device stops working, in percent. */
const DEFAULT_THRESHOLD = 50;

const main = document.getElementById('main');

function savedDevice() {
  try { return JSON.parse(localStorage.getItem(DEVICE) || 'null'); } catch { return null; }
}

/** What this browser offers, as the Tasks API's capabilities. */
function capabilities(probe) {
  return {
    cores: Math.max(1, navigator.hardwareConcurrency || 1),
    // Chromium reports memory (rounded, at most 8 GiB) to secure pages; each task runs in a
    // WebAssembly instance of its own that may grow to 4 GiB.
    memory_mb: navigator.deviceMemory ? Math.round(navigator.deviceMemory * 1024) : 2048,
    os: system[2],
    arch: 'wasm32',
    python: probe.python,
    // Results are compared by hash only among devices with the same FFmpeg. The multi-threaded
    // core runs x264 with the threads the task asks for and the single-threaded one with one,
    // which gives other bytes, so the two are named apart (both say the same version).
    ffmpeg: probe.ffmpeg ? `${probe.ffmpeg}${probe.ffmpegThreads ? ' (ffmpeg.wasm, threads)' : ''}` : null,
    // What the ffmpeg.wasm core carries of the encoders the grid asks for (its x265 and
    // libvpx are there too, but give other bytes than native builds and are far too slow).
    encoders: probe.ffmpeg ? ['libx264', 'aac'] : [],
    benchmark: probe.benchmark,
    // One task at a time: the page shares the device with its owner.
    slots: 1,
    allows: {},
    runtime: 'browser',
    wasm_threads: Boolean(self.crossOriginIsolated && typeof SharedArrayBuffer === 'function'),
  };
}

async function probe() {
  const { answer } = runInWorker({ type: 'probe' });
  const result = await answer;
  if (result.type !== 'probed') throw new Error(`the browser runtimes did not start: ${result.reason}`);
  return result;
}

function show(...children) {
  replace(main, h('h1', { tabindex: '-1' }, 'Contribute this device'), ...children);
}

async function start() {
  show(h('p', {}, 'Starting the browser runtimes (Python, FFmpeg)…'));
  let runtimes;
  try {
    runtimes = await api('/runtimes/runtimes.json', { auth: false });
  } catch (e) {
    show(alertSlotWith(e instanceof ApiError && e.status === 404
      ? 'This coordinator does not serve the browser runtimes, so browsers cannot work for it. Its operator can install them with scripts/browser-runtimes.sh.'
      : e.message));
    return;
  }
  let probed;
  try {
    probed = await probe();
  } catch (e) {
    show(alertSlotWith(e.message));
    return;
  }
  const caps = capabilities(probed);
  const device = savedDevice();
  if (device) {
    try {
      // As the native worker does at every start: what the device offers now.
      await api('/v1/workers/me/capabilities', { method: 'PUT', body: caps, secret: device.token });
      return working(device, caps, runtimes, probed);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        show(alertSlotWith(`Could not reach the coordinator: ${e.message}`), h('button', { type: 'button', onclick: start }, 'Try again'));
        return;
      }
      localStorage.removeItem(DEVICE);
    }
  }
  linkForm(caps, runtimes, probed);
}

function alertSlotWith(message) {
  const slot = alertSlot();
  slot.show(message);
  return slot.el;
}

/** The form that links this browser to its owner. */
function linkForm(caps, runtimes, probed, notice) {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('code') || '';
  const code = field('Link code', h('input', { type: 'text', autocomplete: 'one-time-code', value: fromLink, placeholder: 'ABCD-2345', required: true }),
    'Ask for one in the dashboard (Devices) or with `idlegrid worker link`; it works once, for ten minutes.');
  const name = field('Device name', h('input', { type: 'text', value: browserName(), required: true, maxlength: 200 }));
  const token = field('Owner token', h('input', { type: 'password', autocomplete: 'off' }),
    'The enrollment token of your account; it is used once and not kept in this browser.');
  const errors = alertSlot();
  const register = async (body, secret, path) => {
    errors.clear();
    try {
      const registered = await api(path, { method: 'POST', body, secret, auth: Boolean(secret) });
      const device = { workerId: registered.worker_id, token: registered.token, heartbeatSecs: registered.heartbeat_secs };
      localStorage.setItem(DEVICE, JSON.stringify(device));
      history.replaceState(null, '', location.pathname);
      announce('This browser is linked and starts working.');
      working(device, caps, runtimes, probed);
    } catch (e) {
      errors.show(e.message);
    }
  };
  show(
    notice ? h('p', { class: 'hint' }, notice) : null,
    h('p', {}, 'While this page is open and visible, this browser runs tasks of the grid for you, and you earn for every result that is accepted. It stops when the tab is hidden, when the battery runs low, or when you press Pause.'),
    errors.el,
    h('form', {
      class: 'form', id: 'link-form',
      onsubmit: (event) => {
        event.preventDefault();
        register({ code: code.control.value, name: name.control.value, capabilities: caps }, null, '/v1/workers/link');
      },
    }, code.wrap, name.wrap, h('button', { type: 'submit' }, 'Link this browser')),
    h('details', {},
      h('summary', {}, 'Sign in with your owner token instead'),
      h('form', {
        class: 'form', id: 'token-form',
        onsubmit: (event) => {
          event.preventDefault();
          register({ name: name.control.value, capabilities: caps }, token.control.value.trim(), '/v1/workers/register');
        },
      }, token.wrap, h('button', { type: 'submit' }, 'Sign in and link'))),
    runtimeFacts(runtimes, probed, caps),
  );
}

function runtimeFacts(runtimes, probed, caps) {
  return h('p', { class: 'hint', id: 'runtime-facts' },
    `Runs Python ${probed.python} (Pyodide ${runtimes.pyodide})`,
    probed.ffmpeg
      ? ` and FFmpeg (ffmpeg.wasm ${probed.ffmpegThreads ? `${runtimes.ffmpeg_core_mt}, multi-threaded` : runtimes.ffmpeg_core})`
      : '; FFmpeg did not start here, so no video tasks',
    // Said, so that an owner wondering why video runs slowly here knows.
    probed.ffmpeg && probed.ffmpegThreadsError
      ? `; its multi-threaded build could not start here (${probed.ffmpegThreadsError}), so the single-threaded one runs` : null,
    `; benchmark ${probed.benchmark} MB/s; ${caps.wasm_threads ? 'multi-threaded WebAssembly available' : 'single-threaded WebAssembly'}.`);
}

/**
 * A task in words: "job 12, chunk 3 (python-map)", or "job 12, reduce step (word-count)" for a
 * step of the app's own. The lease says which chunk (`chunk_index`, from 0) but not how many
 * the job has, so no "of N" here.
 */
function taskName({ job, chunk, step, app }) {
  return step ? `job ${job}, ${step} step (${app})` : `job ${job}, chunk ${chunkNumber(chunk)} (${app})`;
}

function capitalized(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The page of a linked browser: the agent running, its state, and the owner's controls. */
function working(device, caps, runtimes, probed) {
  const agent = new Agent(device, { ffmpegThreads: Boolean(probed.ffmpegThreads) });
  const state = h('p', { class: 'lead', id: 'worker-state', role: 'status', 'aria-live': 'polite' });
  // The running task's progress: a bar with its percent beside it, outside the live region (a
  // screen reader hears the task start and end, not every percent; the bar is read on demand).
  const progressId = uid('task-progress');
  const progress = h('progress', { id: progressId, max: 1 });
  const progressText = h('span', { class: 'progress-text', id: 'task-progress-text' });
  const progressRow = h('div', { class: 'progress-row', id: 'task-progress-row', hidden: true },
    h('label', { for: progressId }, 'Task progress'), progress, progressText);
  const tiles = h('div', { id: 'worker-counts' });
  const recent = h('ol', { id: 'recent', class: 'recent' });
  const problem = h('div', { id: 'worker-problem' });
  const pauseButton = h('button', { type: 'button', id: 'pause' }, 'Pause');
  let threshold = Number(localStorage.getItem(THRESHOLD) || DEFAULT_THRESHOLD);
  const thresholdInput = field('Stop on battery below (%)',
    h('input', { type: 'number', min: 0, max: 100, step: 5, value: threshold }),
    'While the device is not charging and its battery is below this level, it does not work. 0: work on any battery level.');
  const battery = h('span', { id: 'battery' });

  const render = () => {
    const s = agent.snapshot();
    let words = 'Waiting for work.';
    if (s.paused.length) words = `Paused: ${s.paused.join('; ')}.`;
    else if (s.working) words = `Working on ${taskName(s.working)}.`;
    // Only a new sentence goes to the live region: progress alone does not repeat it.
    if (state.textContent !== words) replace(state, words);
    progressRow.hidden = !s.working || s.paused.length > 0;
    if (s.working && s.working.progress !== null) {
      progress.value = s.working.progress;
      progressText.textContent = percent(s.working.progress);
    } else {
      // Started, no progress reported yet: an indeterminate bar.
      progress.removeAttribute('value');
      progressText.textContent = 'starting…';
    }
    replace(tiles, counts([
      ['Tasks done here', String(s.done)],
      ['Tasks failed here', String(s.failed)],
      ['Results accepted', s.me ? String(s.me.valid) : '—'],
      ['Earned', s.me ? formatCredits(s.me.earned) : '—'],
    ]));
    replace(recent, s.recent.length ? s.recent.map((r) => h('li', {}, `${capitalized(taskName(r))}: ${r.words}`))
      : h('li', { class: 'muted' }, 'None yet.'));
    replace(problem, s.problem ? alertSlotWith(s.problem) : null);
    pauseButton.textContent = agent.pauses.has('owner') ? 'Resume' : 'Pause';
    pauseButton.setAttribute('aria-pressed', String(agent.pauses.has('owner')));
  };
  agent.addEventListener('change', render);
  agent.addEventListener('unlinked', () => {
    localStorage.removeItem(DEVICE);
    linkForm(caps, runtimes, probed, 'The coordinator no longer knows this browser as a device: link it again.');
  });

  pauseButton.addEventListener('click', () => {
    if (agent.pauses.has('owner')) { agent.resume('owner'); announce('Resumed.'); } else { agent.pause('owner', 'paused by you'); announce('Paused.'); }
  });

  // The tab hidden: stop. Visible again: go on.
  const visibility = () => {
    if (document.visibilityState === 'hidden') agent.pause('hidden', 'this tab is hidden');
    else agent.resume('hidden');
  };
  document.addEventListener('visibilitychange', visibility);
  visibility();

  // Low battery while discharging: stop, where the browser tells (the Battery API).
  let batteryState = null;
  const judgeBattery = () => {
    if (!batteryState) { replace(battery, 'This browser does not report its battery.'); return; }
    const level = Math.round(batteryState.level * 100);
    replace(battery, `Battery ${level}%, ${batteryState.charging ? 'charging' : 'not charging'}.`);
    if (!batteryState.charging && level < threshold) agent.pause('battery', `the battery is at ${level}%, below your ${threshold}%, and not charging`);
    else agent.resume('battery');
  };
  thresholdInput.control.addEventListener('change', () => {
    const value = Number(thresholdInput.control.value);
    if (Number.isFinite(value) && value >= 0 && value <= 100) {
      threshold = value;
      localStorage.setItem(THRESHOLD, String(value));
      judgeBattery();
    }
  });
  if (typeof navigator.getBattery === 'function') {
    navigator.getBattery().then((b) => {
      batteryState = b;
      for (const event of ['levelchange', 'chargingchange']) b.addEventListener(event, judgeBattery);
      judgeBattery();
    }).catch(() => judgeBattery());
  } else {
    judgeBattery();
  }

  // Closing the tab hands the running task back rather than let its lease run out.
  window.addEventListener('pagehide', () => agent.leaving());

  const unlink = h('button', {
    type: 'button', class: 'secondary', id: 'unlink',
    onclick: () => {
      agent.pause('unlinking', 'unlinking');
      agent.stopped = true;
      localStorage.removeItem(DEVICE);
      linkForm(caps, runtimes, probed, 'This browser is no longer linked; its device stays in your list, offline.');
    },
  }, 'Unlink this browser');

  show(
    state, progressRow, problem, tiles,
    h('div', { class: 'actions' }, pauseButton, unlink),
    h('h2', {}, 'Recent tasks'), recent,
    h('h2', {}, 'When this device works'),
    h('p', {}, 'Only while this tab is visible, and not on a low battery: ', battery),
    thresholdInput.wrap,
    runtimeFacts(runtimes, probed, caps),
    h('p', { class: 'hint' }, `Device ${device.workerId}.`),
  );
  render();
  agent.run();
}

start();
