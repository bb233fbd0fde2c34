// Shared by the browser tests: a grid of our own (`idlegrid serve` on a free loopback port plus
// a worker, in a temp dir) and a fresh headless Chromium.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The bundle of the example app `name` (examples/apps/<name>), as `idlegrid app push` sends it:
 * its manifest, with `changes` made to it, and every other file of its folder.
 */
export function exampleBundle(name, changes = {}) {
  const dir = path.resolve(WEB, '../../../examples/apps', name);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const files = Object.fromEntries(fs.readdirSync(dir).filter((f) => f !== 'manifest.json')
    .map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
  return { manifest: { ...manifest, ...changes }, files };
}
export const BIN = path.resolve(WEB, process.env.IDLEGRID_BIN || '../../../target/debug/idlegrid');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Where the pages' screenshots are written (test artifacts). */
export const ARTIFACTS = path.resolve(WEB, process.env.IDLEGRID_ARTIFACTS || '../../../target/browser-artifacts');
/**
 * Where the documentation's screenshots of the main pages go: the directory IDLEGRID_SCREENSHOTS
 * names (scripts/screenshots.sh sets it to docs/screenshots). Unset, none are written.
 */
export const SCREENSHOTS = process.env.IDLEGRID_SCREENSHOTS ? path.resolve(process.env.IDLEGRID_SCREENSHOTS) : null;

/** The two screen sizes the pages are tested and shown at: a laptop's and a phone's. */
export const WIDE = { width: 1366, height: 900 };
export const PHONE = { width: 390, height: 844 };

/**
 * Writes a full-page screenshot of `page` to ARTIFACTS/<name>.png and returns its path. `docs`
 * (`'wide'` or `'phone'`): a main page, also shown in the documentation — laid out for a screen
 * of that size, it is written to SCREENSHOTS/<name>.png too, when SCREENSHOTS is set.
 */
export async function screenshot(page, name, { docs = null } = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(fs.statSync(file).size > 1000, `the screenshot ${file} is empty`);
  if (docs && SCREENSHOTS) await docsScreenshot(page, name, docs === 'phone' ? PHONE : WIDE);
  return file;
}

async function docsScreenshot(page, name, viewport) {
  const before = page.viewportSize();
  const resize = !before || before.width !== viewport.width || before.height !== viewport.height;
  const settle = () => page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  if (resize) {
    await page.setViewportSize(viewport);
    await settle();
  }
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  // The whole page, from its top, cut at two and a half screens: a long list shows its start.
  const height = Math.min(await page.evaluate(() => document.documentElement.scrollHeight), Math.round(viewport.height * 2.5));
  await page.screenshot({
    path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true, clip: { x: 0, y: 0, width: viewport.width, height },
    caret: 'hide', animations: 'disabled',
  });
  if (resize && before) {
    await page.setViewportSize(before);
    await settle();
  }
}

const STARTUP_MS = 60_000;

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function stopProcess(child, name) {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
    const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    try { child.kill('SIGTERM'); } catch { clearTimeout(timer); resolve(); }
  });
}

/**
 * Starts `idlegrid serve --listen 127.0.0.1:0 --json` in a new temp dir and `workers` workers
 * (`--slots slots`). Returns { url, apiKey, enrollmentToken, operatorKey, dir, logs(), startWorker(), stop() }.
 */
export async function startGrid({ workers = 1, slots = 1, serveArgs = [] } = {}) {
  if (!fs.existsSync(BIN)) throw new Error(`no idlegrid binary at ${BIN}; set IDLEGRID_BIN`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idlegrid-web-'));
  fs.chmodSync(dir, 0o755);
  // The grid is our own: no IDLEGRID_* settings of the environment (store, queue, listen…) leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IDLEGRID_')));
  Object.assign(env, { IDLEGRID_HOME: path.join(dir, 'home'), RUST_LOG: process.env.RUST_LOG || 'warn' });
  const serveLog = path.join(dir, 'coordinator.log');
  const serve = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--json', '--data-dir', path.join(dir, 'data'), ...serveArgs], {
    env, stdio: ['ignore', 'pipe', fs.openSync(serveLog, 'a')],
  });
  const children = [serve];
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the coordinator printed no ready line\n${tail(serveLog)}`)), STARTUP_MS);
    const lines = createInterface({ input: serve.stdout });
    let first = true;
    lines.on('line', (line) => {
      if (!first) return;
      first = false;
      clearTimeout(timer);
      try { resolve(JSON.parse(line)); } catch (e) { reject(new Error(`ready line ${line} is not JSON: ${e.message}`)); }
    });
    serve.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the coordinator exited (${code})\n${tail(serveLog)}`)); });
  });
  let credentials = {};
  try { credentials = JSON.parse(fs.readFileSync(path.join(dir, 'data', 'credentials.json'), 'utf8')); } catch { /* older server */ }
  const grid = {
    dir,
    url: ready.url.replace(/\/$/, ''),
    apiKey: ready.api_key || credentials.api_key,
    enrollmentToken: ready.enrollment_token || credentials.enrollment_token,
    operatorKey: ready.operator_key || credentials.operator_key,
    workerLogs: [],
    logs() {
      return [`--- coordinator ---\n${tail(serveLog)}`, ...grid.workerLogs.map((l, i) => `--- worker ${i} ---\n${tail(l)}`)].join('\n');
    },
    startWorker(workerSlots = slots) {
      const log = path.join(dir, `worker-${grid.workerLogs.length}.log`);
      grid.workerLogs.push(log);
      const fd = fs.openSync(log, 'a');
      const n = grid.workerLogs.length - 1;
      const worker = spawn(BIN, ['worker', '--coordinator', grid.url, '--token', grid.enrollmentToken, '--slots', String(workerSlots),
        '--name', `device-${n}`, '--state-dir', path.join(dir, `worker-${n}`), '--drain-secs', '1'], {
        env, stdio: ['ignore', fd, fd],
      });
      children.push(worker);
      return worker;
    },
    async stop() {
      for (const child of children.slice(1).reverse()) await stopProcess(child);
      await stopProcess(serve);
      if (!process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
      else console.log(`kept ${dir}`);
    },
  };
  for (let i = 0; i < workers; i += 1) grid.startWorker();
  return grid;
}

/** A fresh headless Chromium (its own user-data dir), with `args` added to its command line.
 * Returns { context, page, errors, close() }. */
export async function launchBrowser({ viewport = { width: 1200, height: 900 }, args = [] } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'idlegrid-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-quic', '--disable-sync', '--autoplay-policy=no-user-gesture-required', ...args],
  });
  const errors = [];
  const watch = (page) => {
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`); });
  };
  context.on('page', watch);
  context.pages().forEach(watch);
  const page = context.pages()[0] || await context.newPage();
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A grid (`startGrid` options, and the browser's `viewport` and command line `browserArgs`)
 * and a browser for one test file. */
export async function openGrid({ viewport, browserArgs = [], ...options } = {}) {
  const grid = await startGrid(options);
  try {
    return { grid, browser: await launchBrowser({ ...(viewport ? { viewport } : {}), args: browserArgs }) };
  } catch (e) {
    await grid.stop();
    throw e;
  }
}

/** Stops what `openGrid` started, whichever parts did start. */
export async function closeGrid({ grid, browser }) {
  if (browser) await browser.close();
  if (grid) await grid.stop();
}

/** Calls the grid's API from the test (not through the page). */
export async function call(grid, secret, apiPath, { method = 'GET', body, headers = {}, raw = false } = {}) {
  const h = { Authorization: `Bearer ${secret}`, ...headers };
  let payload = body;
  if (body !== undefined && !(body instanceof Uint8Array) && typeof body !== 'string') {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(`${grid.url}${apiPath}`, { method, headers: h, body: payload });
  if (raw) return response;
  const text = await response.text();
  const value = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error(`${method} ${apiPath}: ${response.status} ${text}`);
    error.status = response.status;
    error.body = value;
    throw error;
  }
  return value;
}

export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Creates a python-map job through the API, uploads `input` (one PUT) and runs it. */
export async function submitPythonJob(grid, { script, input, chunkLines = 10, preferences = {} }) {
  const job = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'python-map', script, chunk_lines: chunkLines, params: {}, preferences },
  });
  const bytes = Buffer.from(input);
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/run`, { method: 'POST' });
  return job;
}

/**
 * Micro-credits as the pages show them on a grid of 1 credit = 1 USD, worked out apart from
 * the page's code: every digit of the credits there is (at least two), and the dollars to the
 * cent, or below a cent to two significant digits.
 */
export function expectedMoney(micros) {
  const sign = micros < 0 ? '−' : '';
  const abs = Math.abs(micros);
  const fraction = String(abs % 1_000_000).padStart(6, '0').replace(/0+$/, '').padEnd(2, '0');
  const credits = `${Math.floor(abs / 1_000_000)}.${fraction}`;
  const usd = abs >= 10_000 || abs === 0 ? (abs / 1e6).toFixed(2) : String(Number((abs / 1e6).toPrecision(2)));
  return `${sign}${credits} credits (${sign}${usd} USD)`;
}

/** Polls `fn` until it returns a truthy value; fails with `message()` after `timeout` ms. */
export async function waitFor(fn, { timeout = 30_000, interval = 250, message = () => 'timed out' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const said = typeof message === 'function' ? await Promise.resolve(message(last)).catch((e) => `(${e.message})`) : message;
      throw new Error(`${said} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/**
 * Signs in on the page with `secret` and waits for the start page of that kind. Returns the
 * dashboard session the page made from it (and keeps, instead of the secret).
 */
export async function signIn(page, grid, secret) {
  await page.goto(`${grid.url}/#/signin`);
  const earlier = await page.evaluate(() => sessionStorage.getItem('idlegrid.secret'));
  await page.getByLabel('Secret', { exact: true }).fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Signed in with a new session, and gone on to the start page (not a leftover of an earlier one).
  await page.waitForFunction((old) => {
    const kept = sessionStorage.getItem('idlegrid.secret') || '';
    return kept.startsWith('igs_') && kept !== old && location.hash !== '#/signin' && document.getElementById('sign-out');
  }, earlier, { timeout: 15_000 });
  await page.locator('h1#page-title').waitFor();
  return page.evaluate(() => sessionStorage.getItem('idlegrid.secret'));
}

/** A short description of the focused element (for keyboard tests). */
export function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      name: el.getAttribute('name'),
      type: el.getAttribute('type'),
      href: el.getAttribute('href'),
      label: el.getAttribute('aria-label'),
      text: (el.textContent || '').trim().slice(0, 40),
      visible: el.matches(':focus-visible') && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
    };
  });
}

/** Presses Tab (Shift+Tab with `back`) until `match(focused)`; fails after `max` presses. */
export async function tabTo(page, match, what, { max = 60, back = false } = {}) {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    const f = await focused(page);
    if (f && match(f)) {
      assert.ok(f.visible, `the focus on ${what} is visible`);
      return f;
    }
  }
  throw new Error(`Tab never reached ${what}`);
}

/** Controls without an accessible name from a label, aria-label or aria-labelledby. */
export function unlabelledControls(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden')
    .filter((el) => {
      const fromLabels = [...(el.labels || [])].map((l) => l.textContent.trim()).join('');
      const fromAria = (el.getAttribute('aria-label') || '').trim();
      const fromIds = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
        .map((id) => (document.getElementById(id) || { textContent: '' }).textContent.trim()).join('');
      return !(fromLabels || fromAria || fromIds);
    })
    .map((el) => el.outerHTML.slice(0, 120)));
}

/** Fails when the page scrolls sideways (wider than its viewport). */
export async function assertNoSidewaysScroll(page, what) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `${what}: ${scroll}px wide in a ${width}px viewport`);
}

/** A python-map script that upper-cases its chunk. */
export const UPPER_SCRIPT = `import os
name = os.listdir("input")[0]
with open(os.path.join("input", name)) as src, open("output/out.txt", "w") as out:
    for line in src:
        out.write(line.upper())
`;

/** Waits until the job page shows a final state; returns it. */
export async function waitForFinalState(page, grid, jobId, timeout = 180_000) {
  const badge = page.locator('.state-line .badge');
  await waitFor(async () => ['completed', 'failed', 'cancelled'].includes(await badge.getAttribute('data-state', { timeout: 1000 })), {
    timeout,
    interval: 500,
    message: () => `job ${jobId} did not finish on the page\n${grid.logs()}`,
  });
  return badge.getAttribute('data-state');
}

/** Waits for the page to go to a job page after submitting the new-job form; returns the job id.
 * Fails at once with the page's alert if one shows. */
export async function waitForJobPage(page, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const m = page.url().match(/#\/jobs\/(\d+)$/);
    if (m) return Number(m[1]);
    const alerts = await page.locator('[role="alert"]').allTextContents().catch(() => []);
    if (alerts.length) throw new Error(`the page shows an error instead of the job: ${alerts.join(' | ')}`);
    if (Date.now() > deadline) throw new Error(`no job page after ${timeout} ms; the page says: ${await page.locator('main').textContent()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Links `page` to the grid's owner as a browser worker (a link code from the API) and waits
 * until it asks for work. */
export async function linkBrowserWorker(page, grid, { timeout = 90_000 } = {}) {
  const code = await call(grid, grid.enrollmentToken, '/v1/owner/link-codes', { method: 'POST' });
  await page.goto(`${grid.url}${code.contribute_path}`);
  await page.getByRole('button', { name: 'Link this browser' }).click({ timeout });
  await waitFor(async () => /Waiting for work|Working on/.test(await page.locator('#worker-state').textContent({ timeout: 1000 })), {
    timeout: 30_000, message: () => `the page did not start working\n${grid.logs()}`,
  });
}

/**
 * Makes `page`'s browser one without an HLS player of its own, as Firefox (and Chromium before
 * its built-in one): its canPlayType says no to HLS playlists, so the job page plays streaming
 * outputs through dash.js.
 */
export const withoutNativeHls = (page) => page.addInitScript(() => {
  const canPlayType = HTMLMediaElement.prototype.canPlayType;
  HTMLMediaElement.prototype.canPlayType = function canPlayWithoutHls(type) {
    return /mpegurl/i.test(type) ? '' : canPlayType.call(this, type);
  };
});

/**
 * Resolves in the page when `video` has at least `want`'s readyState, more than its
 * currentTime, a picture size (`size`) and a media source (`blob`), checked at once and on
 * each of `events`; rejects on a media error, or after `ms` with what the element was doing.
 */
export function videoWhen(video, want, events, ms = 30_000) {
  return video.evaluate((v, { want, events, ms }) => new Promise((resolve, reject) => {
    const state = () => ({ readyState: v.readyState, currentTime: v.currentTime, paused: v.paused, networkState: v.networkState, w: v.videoWidth, h: v.videoHeight, src: v.src.slice(0, 5) });
    const ready = () => v.readyState >= (want.readyState ?? 0) && v.currentTime > (want.currentTime ?? -1)
      && (!want.size || v.videoWidth > 0) && (!want.blob || v.src.startsWith('blob:'));
    const done = (fn, value) => {
      clearTimeout(timer);
      for (const name of events) v.removeEventListener(name, check);
      v.removeEventListener('error', failed);
      fn(value);
    };
    const check = () => { if (ready()) done(resolve, state()); };
    const failed = () => done(reject, new Error(`media error: ${v.error && (v.error.message || v.error.code)}`));
    const timer = setTimeout(() => done(reject, new Error(`not ready after ${ms} ms: ${JSON.stringify(state())}`)), ms);
    for (const name of events) v.addEventListener(name, check);
    v.addEventListener('error', failed);
    check();
  }), { want, events, ms });
}

/**
 * Chromium's WebAssembly memory held at 768 MiB: under the 1 GiB ffmpeg.wasm's threaded core
 * reserves, so pages fall back to its single-threaded core; plenty for that core and Pyodide.
 */
export const SHORT_OF_MEMORY = ['--js-flags=--wasm-max-mem-pages=12288'];

/** A job's chunks and why any failed, for a failure's message. */
export async function chunkReport(grid, jobId) {
  const { tasks } = await call(grid, grid.apiKey, `/v1/jobs/${jobId}/tasks`).catch((e) => ({ tasks: [{ error: e.message }] }));
  return tasks.map((t) => JSON.stringify(t)).join('\n');
}

/** What a /contribute `page` says of its recent tasks (their failure reasons among them). */
export const recentTasks = (page) => page.locator('#recent li').allTextContents().catch((e) => [`(${e.message})`]);
