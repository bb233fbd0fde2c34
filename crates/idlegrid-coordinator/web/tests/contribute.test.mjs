// The browser worker: a grid with no native worker at all, and the /contribute page in headless
// Chromium as its only device.
// 1. The owner asks for a link code in the dashboard; the page (on a phone-sized screen, every
//    control labelled, by keyboard) links with it and registers as a browser device (Pyodide's
//    Python, ffmpeg.wasm, a benchmark measured in the page).
// 2. A python-map job completes on it; the output is the expected bytes, and what its script
//    wrote to stderr is in the job's logs (the page sends it with its reports).
// 3. A video-transcode job (video chunks and the audio task) completes on it; the output is
//    H.264 + AAC with every frame (ffprobe), i.e. it passed the video validator chunk by chunk.
// 4. Pause hands a running task back at once (its chunk is queued again long before the lease
//    would expire); Resume finishes the job.
// 5. A low battery while discharging pauses it, charging lifts that; a hidden tab pauses it.
// 6. Closing the tab hands the running task back.
// Also: a running task's progress shows as a labelled bar with its percent (at 390 and 1366 px,
// no sideways scrolling), and its chunk is numbered from 1, as the job page numbers it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { call, closeGrid, openGrid, sha256, signIn, submitPythonJob, UPPER_SCRIPT, waitFor, screenshot } from './helpers.mjs';

let grid;
let browser;
let page;
/** The browser's device id, as linked by the first test. */
let linkedId;

before(async () => ({ grid, browser } = await openGrid({ workers: 0 })));
after(() => closeGrid({ grid, browser }));

const state = () => page.locator('#worker-state').textContent({ timeout: 2000 });

async function waitForState(pattern, timeout = 60_000) {
  await waitFor(async () => pattern.test(await state()), {
    timeout, message: async () => `the page says "${await state().catch(() => '?')}", not ${pattern}\n${grid.logs()}`,
  });
}

async function waitForJob(jobId, timeout = 240_000) {
  return waitFor(async () => {
    const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
    if (job.state === 'failed' || job.state === 'cancelled') throw new Error(`job ${jobId} ${job.state}: ${JSON.stringify(job.error)}`);
    return job.state === 'completed' && job;
  }, { timeout, interval: 500, message: async () => `job ${jobId} did not complete; the page says "${await state().catch(() => '?')}"\n${grid.logs()}` });
}

/** Controls without an accessible name (a label, aria-label or aria-labelledby). */
function unlabelled(p) {
  return p.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => el.type !== 'hidden')
    .filter((el) => !((el.labels && [...el.labels].some((l) => l.textContent.trim())) || el.getAttribute('aria-label')
      || (el.tagName === 'BUTTON' && el.textContent.trim())))
    .map((el) => el.outerHTML.slice(0, 120)));
}

/** The browser device as its owner sees it. */
async function browserDevice() {
  const { devices } = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  assert.equal(devices.length, 1, 'the page is the grid\'s only device');
  return devices[0];
}

/** A python-map script that takes about `secs` seconds of CPU before writing its output. */
const slowScript = (secs) => `import os, time
start = time.time()
while time.time() - start < ${secs}:
    pass
name = os.listdir("input")[0]
with open(os.path.join("input", name)) as src, open("output/out.txt", "w") as out:
    out.write(src.read())
`;

test('the owner links a browser with a code from the dashboard', async () => {
  const dashboard = await browser.context.newPage();
  await signIn(dashboard, grid, grid.enrollmentToken);
  await dashboard.goto(`${grid.url}/#/devices`);
  await dashboard.getByRole('button', { name: 'Link a browser' }).click();
  const link = await dashboard.locator('#link-url').getAttribute('href', { timeout: 10_000 });
  assert.match(link, /\/contribute#code=[0-9A-Z]{4}-[0-9A-Z]{4}$/);
  // Beside it, the link as a QR code: an image that loaded, drawn from the coordinator's SVG.
  const qr = dashboard.locator('#link-qr');
  await qr.waitFor();
  assert.match(await qr.getAttribute('alt'), /QR code of the link .*\/contribute#code=/);
  const drawn = await qr.evaluate((img) => img.complete && img.naturalWidth >= 100);
  assert.ok(drawn, 'the QR code image is drawn');
  await dashboard.close();

  page = browser.page;
  // A phone's screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const started = Date.now();
  await page.goto(link);
  const code = page.getByLabel('Link code');
  await code.waitFor({ timeout: 90_000 });
  assert.equal(await code.inputValue(), link.split('#code=')[1], 'the code from the link is filled in');
  assert.deepEqual(await unlabelled(page), [], 'every control has a label');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling on a phone');
  // By keyboard: Enter in the code's field links the browser.
  await code.focus();
  await page.keyboard.press('Enter');
  await waitForState(/Waiting for work/);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling when working');
  await page.setViewportSize({ width: 1200, height: 900 });
  console.log(`linked and waiting after ${Date.now() - started} ms (runtimes probed in the page)`);
  assert.equal(await page.evaluate(() => location.hash), '', 'the code is taken out of the address');
  const device = await browserDevice();
  linkedId = device.id;
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('idlegrid.contribute.device')).workerId), device.id);
  const caps = device.capabilities;
  assert.equal(caps.runtime, 'browser');
  assert.equal(caps.arch, 'wasm32');
  assert.match(caps.python, /^3\.\d+/);
  assert.ok(caps.ffmpeg, 'ffmpeg.wasm started in the page');
  assert.ok(caps.benchmark > 0, `benchmark ${caps.benchmark}`);
  assert.equal(caps.slots, 1);
  assert.equal(typeof caps.wasm_threads, 'boolean');
  assert.match(await page.locator('#runtime-facts').textContent(), /Pyodide/);
  await screenshot(page, 'contribute-waiting');
});

test('a python-map job completes in the browser, and its tasks\' stderr reaches the job\'s logs', async () => {
  const input = Array.from({ length: 30 }, (_, i) => `line ${i} of the browser's job\n`).join('');
  const script = `import os, sys\nprint("WARNING: chunk " + os.environ["IDLEGRID_CHUNK_INDEX"] + " said this in the browser", file=sys.stderr)\n${UPPER_SCRIPT}`;
  const job = await submitPythonJob(grid, { script, input, chunkLines: 10 });
  const started = Date.now();
  await waitForJob(job.id);
  console.log(`python-map job of 3 chunks done in ${Date.now() - started} ms`);
  const output = await call(grid, grid.apiKey, `/v1/jobs/${job.id}/output`, { raw: true });
  assert.equal(output.status, 200);
  assert.equal(await output.text(), input.toUpperCase());
  await waitFor(async () => Number(await page.locator('#worker-counts dd').first().textContent()) >= 3, {
    message: () => 'the page does not count its tasks',
  });
  const device = await browserDevice();
  assert.ok(device.valid >= 3, `valid results ${device.valid}`);
  assert.ok(device.earned > 0, 'the owner earned for them');
  // Each task's stderr line, in a task log of its chunk, from this device, as its customer sees it
  // (kept just after the report is answered: waited for).
  const taskLogs = () => call(grid, grid.apiKey, `/v1/jobs/${job.id}/logs?level=warning`)
    .then(({ logs }) => logs.filter((l) => l.step === 'task'));
  const logs = await waitFor(async () => { const l = await taskLogs(); return l.length === 3 && l; }, {
    timeout: 10_000, message: async () => `task logs ${JSON.stringify(await taskLogs())}`,
  });
  assert.deepEqual(logs.map((l) => l.chunk).sort(), [0, 1, 2]);
  for (const log of logs) {
    assert.equal(log.device, linkedId);
    assert.equal(log.outcome, 'completed');
    assert.deepEqual(log.lines, [{ level: 'warning', text: `WARNING: chunk ${log.chunk} said this in the browser` }]);
  }
});

/** A python-map script that reports its progress in `steps` steps of about a second of CPU each. */
const progressScript = (steps) => `import os, time
for step in range(1, ${steps} + 1):
    start = time.time()
    while time.time() - start < 1:
        pass
    print(f"idlegrid:progress {step / (${steps} + 1)}", flush=True)
name = os.listdir("input")[0]
with open(os.path.join("input", name)) as src, open("output/out.txt", "w") as out:
    out.write(src.read())
`;

/** Whether the page scrolls sideways at its viewport's width. */
const sideways = (p) => p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);

test('the running task shows its progress as a bar, and chunks are numbered from 1 as on the job page', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const job = await submitPythonJob(grid, { script: progressScript(5), input: 'first\nsecond\n', chunkLines: 1 });
  const bar = page.getByRole('progressbar', { name: 'Task progress' });
  // The bar of the first chunk, with a value from the script's progress lines and its percent beside it.
  await waitFor(async () => (await bar.isVisible()) && (await bar.evaluate((p) => p.position)) > 0, {
    timeout: 60_000, message: async () => `no progress bar; the page says "${await state().catch(() => '?')}"`,
  });
  assert.match(await state(), new RegExp(`^Working on job ${job.id}, chunk [12] \\(python-map\\)\\.$`), 'the state names the chunk from 1, and no percent (it is a live region)');
  const value = await bar.evaluate((p) => p.value);
  assert.ok(value > 0 && value < 1, `progress ${value}`);
  const words = await page.locator('#task-progress-text').textContent();
  assert.match(words, /^\d+ %$/);
  assert.ok(Math.abs(Number.parseInt(words, 10) - value * 100) <= 20, `${words} for a bar at ${value}`);
  assert.equal(await sideways(page), false, 'no sideways scrolling at 390 px while working');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390));
  await screenshot(page, 'contribute-working-phone');
  await page.setViewportSize({ width: 1366, height: 900 });
  assert.ok(await bar.isVisible());
  assert.equal(await sideways(page), false, 'no sideways scrolling at 1366 px while working');
  await screenshot(page, 'contribute-working', { docs: 'wide' });
  await waitForJob(job.id, 120_000);
  await waitFor(async () => !(await bar.isVisible()), { message: () => 'the bar stays after the work' });

  // The two chunks as this page numbered them (its leases' chunk_index 0 and 1)…
  const recent = await page.locator('#recent li').allTextContents();
  const named = recent.filter((r) => r.startsWith(`Job ${job.id}, `)).map((r) => r.match(/chunk (\d+)/)[1]).sort();
  assert.deepEqual(named, ['1', '2'], `recent tasks: ${JSON.stringify(recent)}`);
  // …are the job page's chunks 1 and 2 of 2.
  const dashboard = await browser.context.newPage();
  await signIn(dashboard, grid, grid.apiKey);
  await dashboard.goto(`${grid.url}/#/jobs/${job.id}`);
  const squares = dashboard.locator('.chunk-grid li');
  await waitFor(async () => (await squares.count()) === 2, { message: () => 'no chunk grid' });
  assert.deepEqual(await squares.evaluateAll((els) => els.map((e) => e.title)), ['Chunk 1 of 2: done', 'Chunk 2 of 2: done']);
  await dashboard.close();
  await page.setViewportSize({ width: 1200, height: 900 });
  assert.deepEqual(browser.errors, []);
});

test('a video-transcode job completes in the browser and its output validates', async () => {
  const clip = path.join(grid.dir, 'clip.mkv');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
    '-g', '25', '-c:a', 'aac', '-shortest', clip]);
  const before = (await browserDevice()).valid;
  const job = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'video-transcode', params: { preset: 'source', x264_preset: 'ultrafast' }, chunk_seconds: 1 },
  });
  const bytes = fs.readFileSync(clip);
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/run`, { method: 'POST' });
  const started = Date.now();
  const done = await waitForJob(job.id, 300_000);
  console.log(`video job of ${done.chunks.total} tasks done in ${Date.now() - started} ms`);
  assert.ok(done.chunks.total >= 3, `video chunks and the audio task: ${done.chunks.total}`);
  const out = path.join(grid.dir, 'out.mp4');
  const response = await call(grid, grid.apiKey, `/v1/jobs/${job.id}/output`, { raw: true });
  assert.equal(response.status, 200);
  fs.writeFileSync(out, Buffer.from(await response.arrayBuffer()));
  const probed = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries',
    'stream=codec_type,codec_name,width,height,nb_read_frames', '-of', 'json', out]).toString());
  const video = probed.streams.find((s) => s.codec_type === 'video');
  const audio = probed.streams.find((s) => s.codec_type === 'audio');
  assert.equal(video.codec_name, 'h264');
  assert.equal(`${video.width}x${video.height}`, '160x120');
  assert.equal(Number(video.nb_read_frames), 50, 'every frame of the 2 s clip');
  assert.equal(audio.codec_name, 'aac');
  const device = await browserDevice();
  assert.equal(device.valid - before, done.chunks.total, 'every task of the job ran in the browser');
});

/** The job's chunk counts. */
const chunks = async (jobId) => (await call(grid, grid.apiKey, `/v1/jobs/${jobId}`)).chunks;

test('pausing hands the running task back at once; resuming finishes the job', async () => {
  const job = await submitPythonJob(grid, { script: slowScript(8), input: 'slow\n', chunkLines: 10 });
  await waitForState(/Working on job \d+, chunk 1 \(python-map\)/);
  await page.getByRole('button', { name: 'Pause' }).click();
  await waitForState(/Paused: paused by you/, 5000);
  // Handed back: queued again at once, not after the 30 s lease.
  const handedBack = Date.now();
  await waitFor(async () => { const c = await chunks(job.id); return c.running === 0 && c.queued === 1; }, {
    timeout: 5000, interval: 100, message: async () => `chunks ${JSON.stringify(await chunks(job.id))}`,
  });
  console.log(`paused task queued again after ${Date.now() - handedBack} ms`);
  assert.equal((await call(grid, grid.apiKey, `/v1/jobs/${job.id}`)).state, 'running');
  await page.getByRole('button', { name: 'Resume' }).click();
  await waitForJob(job.id, 120_000);
});

test('a low battery while discharging pauses the page, and so does a hidden tab', async () => {
  // The Battery API cannot be driven in headless Chromium: the page gets a battery it can be told about.
  await page.close({ runBeforeUnload: true });
  page = await browser.context.newPage();
  await page.addInitScript(() => {
    const battery = new EventTarget();
    battery.level = 0.2;
    battery.charging = false;
    window.testBattery = battery;
    Object.defineProperty(Navigator.prototype, 'getBattery', { value: () => Promise.resolve(battery), configurable: true });
  });
  await page.goto(`${grid.url}/contribute`);
  // Still linked (the same device, from localStorage), and paused by the battery.
  await waitForState(/Paused: the battery is at 20%, below your 50%, and not charging/, 90_000);
  await screenshot(page, 'contribute-battery');
  await page.evaluate(() => { window.testBattery.charging = true; window.testBattery.dispatchEvent(new Event('chargingchange')); });
  await waitForState(/Waiting for work/, 5000);
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await waitForState(/Paused: this tab is hidden/, 5000);
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await waitForState(/Waiting for work/, 5000);
  // Reopened, the page is the same device, not a second one (browserDevice checks there is one).
  assert.equal((await browserDevice()).id, linkedId);
});

test('closing the tab hands the running task back', async () => {
  const job = await submitPythonJob(grid, { script: slowScript(8), input: 'closing\n', chunkLines: 10 });
  await waitForState(/Working on job \d+, chunk 1 \(python-map\)/);
  await page.close({ runBeforeUnload: true });
  const closed = Date.now();
  await waitFor(async () => { const c = await chunks(job.id); return c.running === 0 && c.queued === 1; }, {
    timeout: 5000, interval: 100, message: async () => `chunks ${JSON.stringify(await chunks(job.id))}`,
  });
  console.log(`task of the closed tab queued again after ${Date.now() - closed} ms`);
  // Back again: the same device picks the job up and finishes it.
  page = await browser.context.newPage();
  await page.goto(`${grid.url}/contribute`);
  await waitForJob(job.id, 120_000);
  assert.deepEqual(browser.errors, []);
});
