// ffmpeg.wasm's multi-threaded core failing to start on a page that allows it: the browser
// worker falls back to the single-threaded core and says so. Chromium is started with V8's
// limit on WebAssembly memory below the 1 GiB of shared memory the threaded core reserves
// (--wasm-max-mem-pages), so the threaded core's start fails as it does on a device short of
// memory ("could not allocate memory"), while the single-threaded core, whose memory grows as
// needed, still runs. Nothing in the pages or the runner is changed for the test: only the
// browser's command line, which neither a task script nor the coordinator can set.
// 1. The runner (tests/static-server.mjs, cross-origin isolated): the probe reports FFmpeg with
//    ffmpegThreads false and why the threaded core did not start; a video task run with the
//    probe's choice encodes with the single-threaded core, the same bytes as on a page that is
//    not isolated; a run asking for the threaded core fails rather than switch cores.
// 2. The /contribute page on a real grid: the device's FFmpeg capability names the
//    single-threaded core, the page says why, and a video job completes on it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { call, closeGrid, linkBrowserWorker, openGrid, sha256, SHORT_OF_MEMORY, waitFor, WEB } from './helpers.mjs';
import { ensureRuntimes, run, runInWorker, startStaticServer } from './static-server.mjs';

const VIDEO_TASK = fs.readFileSync(path.join(WEB, '..', 'apps', 'video-transcode', 'task.py'), 'utf8');
const CASE_TIMEOUT_MS = 120_000;

let grid;
let browser;
let isolated;
let plain;

before(async () => {
  ensureRuntimes();
  isolated = await startStaticServer();
  plain = await startStaticServer({ isolated: false });
  ({ grid, browser } = await openGrid({ workers: 0, browserArgs: SHORT_OF_MEMORY }));
});

after(async () => {
  await closeGrid({ grid, browser });
  if (isolated) await isolated.close();
  if (plain) await plain.close();
});

/** A 1-second 160x120 25 fps H.264 clip in Matroska, as the video app's chunks are. */
function chunk() {
  const file = path.join(grid.dir, 'chunk.mkv');
  if (!fs.existsSync(file)) {
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-t', '1',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-pix_fmt', 'yuv420p', '-f', 'matroska', file]);
  }
  return file;
}

/** The video app's task for that chunk, with two x264 threads: the threaded core would give
 * other bytes than the single-threaded one, so the bytes tell which core ran. */
const TASK = {
  kind: 'video', frames: 25, width: 160, height: 120, scale: false, keyint: 25, rendition: 0,
  encoder: { codec: 'h264', preset: 'ultrafast', crf: 28, threads: 2 },
};

test('the runner: the probe falls back to the single-threaded core, and runs use it', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${isolated.url}/`);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'the page allows the threaded core');
  const { final: probed } = await runInWorker(page, { type: 'probe' }, undefined, { timeout: CASE_TIMEOUT_MS });
  assert.equal(probed.type, 'probed', JSON.stringify(probed));
  assert.equal(probed.ffmpegThreads, false, JSON.stringify(probed));
  assert.match(probed.ffmpeg, /^\d+\.\d+/, JSON.stringify(probed));
  assert.equal(probed.ffmpegError, undefined);
  assert.match(probed.ffmpegThreadsError, /could not allocate memory/, JSON.stringify(probed));
  console.log(`probe: ffmpeg ${probed.ffmpeg}, single-threaded; the threaded core: ${probed.ffmpegThreadsError}`);

  const message = (ffmpegThreads) => ({ ...run(VIDEO_TASK, { inputName: 'chunk.mkv', task: TASK, maxOutputBytes: 64 << 20 }), ffmpegThreads });
  const input = fs.readFileSync(chunk());
  const fallback = await runInWorker(page, message(probed.ffmpegThreads), input, { timeout: CASE_TIMEOUT_MS });
  assert.equal(fallback.final.type, 'done', JSON.stringify(fallback.final));
  const encoded = path.join(grid.dir, 'fallback.mkv');
  fs.writeFileSync(encoded, fallback.output);
  const frames = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,nb_read_frames', '-of', 'csv=p=0', encoded], { encoding: 'utf8' });
  assert.equal(frames.trim(), 'h264,25');
  // The single-threaded core's bytes, as a page that is not isolated makes them.
  const other = await browser.context.newPage();
  await other.goto(`${plain.url}/`);
  const single = await runInWorker(other, message(undefined), input, { timeout: CASE_TIMEOUT_MS });
  assert.equal(single.final.type, 'done', JSON.stringify(single.final));
  assert.equal(fallback.final.sha256, single.final.sha256, 'the fallback runs the single-threaded core');
  await other.close();

  // Asked for the threaded core, a run does not switch to the other one: it fails.
  const insisted = await runInWorker(page, message(true), input, { timeout: CASE_TIMEOUT_MS });
  assert.equal(insisted.final.type, 'failed', JSON.stringify(insisted.final));
  assert.match(insisted.final.reason, /FileNotFoundError: \[Errno 44\] ffmpeg cannot start in this browser: RangeError: WebAssembly\.Memory\(\): could not allocate memory/);
  // And a page that cannot run the threaded core at all refuses such a run before it starts.
  const unable = await browser.context.newPage();
  await unable.goto(`${plain.url}/`);
  const refused = await runInWorker(unable, message(true), input, { timeout: CASE_TIMEOUT_MS });
  assert.equal(refused.final.type, 'failed');
  assert.match(refused.final.reason, /^the multi-threaded ffmpeg\.wasm was asked for, but this page cannot run it/);
  await unable.close();
  await page.close();
});

test('the /contribute page names the single-threaded core and runs a video job with it', async () => {
  const page = await browser.context.newPage();
  await linkBrowserWorker(page, grid);
  const { devices } = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  assert.equal(devices.length, 1);
  const caps = devices[0].capabilities;
  assert.match(caps.ffmpeg, /^\d+\.\d+\S*$/, `the single-threaded core's name, not the threaded one's: ${caps.ffmpeg}`);
  assert.deepEqual(caps.encoders, ['libx264', 'aac']);
  assert.equal(caps.wasm_threads, true, 'the page itself is cross-origin isolated');
  const facts = await page.locator('#runtime-facts').textContent();
  assert.doesNotMatch(facts, /multi-threaded\)/);
  assert.match(facts, /its multi-threaded build could not start here \(.*could not allocate memory.*\), so the single-threaded one runs/);

  const clip = path.join(grid.dir, 'clip.mkv');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25',
    '-t', '2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '25', clip]);
  const job = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'video-transcode', params: { preset: 'source', x264_preset: 'ultrafast' }, chunk_seconds: 1 },
  });
  const bytes = fs.readFileSync(clip);
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/run`, { method: 'POST' });
  const done = await waitFor(async () => {
    const j = await call(grid, grid.apiKey, `/v1/jobs/${job.id}`);
    if (j.state === 'failed') throw new Error(`job failed: ${JSON.stringify(j.error)}`);
    return j.state === 'completed' && j;
  }, { timeout: 240_000, interval: 500, message: async () => `the job did not complete; the page says ${await page.locator('#worker-state').textContent()}\n${grid.logs()}` });
  assert.ok(done.chunks.total >= 2, JSON.stringify(done.chunks));
  const [device] = (await call(grid, grid.enrollmentToken, '/v1/owner/devices')).devices;
  assert.ok(device.valid >= done.chunks.total, 'every task ran in the page');
  await page.close();
  assert.deepEqual(browser.errors, []);
});
