// ffmpeg.wasm's two cores in the runner (ui/runner.js), against the native ffmpeg on the same
// chunks, with the real video-transcode task.py:
// 1. A page that is cross-origin isolated runs the multi-threaded core; one that is not (no
//    COOP/COEP) the single-threaded one, of the same FFmpeg.
// 2. Bytes: the two cores agree when x264 runs one thread; the threaded core gives the same
//    bytes every time with two threads, and other bytes than the single-threaded core (which
//    has no threads, so runs one whatever the task asks): contribute.js names the two apart.
//    What the native ffmpeg makes of the same chunk is printed beside: another build of x264
//    and of the maths library, so other bytes (which is why the coordinator compares results
//    only within one kind of runtime).
// 3. Time: a 4 s 1280x720 chunk at the video app's defaults (x264 medium, CRF 23, 2 threads),
//    natively and with each core, printed (docs/BENCHMARKS.md, "The browser worker").

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { launchBrowser, sha256, WEB } from './helpers.mjs';
import { ensureRuntimes, run, runInWorker, startStaticServer } from './static-server.mjs';

const TASK_DIR = path.join(WEB, '..', 'apps', 'video-transcode');
const VIDEO_TASK = fs.readFileSync(path.join(TASK_DIR, 'task.py'), 'utf8');
/** How long one encode may take in the browser before the test gives up on it. */
const RUN_TIMEOUT_MS = 240_000;

let isolated;
let plain;
let browser;
/** The runner's pages: cross-origin isolated (threaded core) and not (single-threaded core). */
let threaded;
let single;
let dir;

before(async () => {
  ensureRuntimes();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idlegrid-threads-'));
  isolated = await startStaticServer();
  plain = await startStaticServer({ isolated: false });
  browser = await launchBrowser();
  threaded = browser.page;
  await threaded.goto(`${isolated.url}/`);
  single = await browser.context.newPage();
  await single.goto(`${plain.url}/`);
});

after(async () => {
  if (browser) await browser.close();
  if (isolated) await isolated.close();
  if (plain) await plain.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A `seconds`-long `size` (WxH) 25 fps H.264 clip in Matroska, as the video app's chunks are. */
function clip(name, size, seconds) {
  const file = path.join(dir, `${name}.mkv`);
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25`, '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-pix_fmt', 'yuv420p', '-f', 'matroska', file]);
  return file;
}

/** A video chunk's task parameters as the coordinator's partitioner sends them for a job with
 * the default parameters (apps/video/params.rs: x264 medium, CRF 23, 2 threads), at the
 * source's size; `threads` for x264 other than the default's. */
function videoTask(width, height, frames, threads = 2) {
  return {
    kind: 'video', frames, width, height, scale: false, keyint: 50, rendition: 0,
    encoder: {
      codec: 'h264', preset: 'medium', crf: 23, threads,
      audio_codec: 'aac', audio_bitrate: '128k', audio_channels: 2, audio_sample_rate: 48000,
    },
  };
}

/** The task run by `page`'s runner on the chunk `file`: {sha256, output, ms} (`ms` from the
 * Worker's creation to its answer). */
async function inBrowser(page, file, task) {
  const message = run(VIDEO_TASK, { inputName: 'chunk.mkv', task, maxOutputBytes: 256 << 20 });
  const { final, output, workerMs } = await runInWorker(page, message, fs.readFileSync(file), { timeout: RUN_TIMEOUT_MS });
  assert.equal(final.type, 'done', JSON.stringify(final));
  assert.equal(final.sha256, sha256(output));
  return { sha256: final.sha256, output, ms: workerMs };
}

/** The task run as the native worker runs it (python -E -s -B -u task.py in a scratch directory
 * holding input/chunk.mkv and an empty output/), with the Debian ffmpeg: {sha256, ms}. */
function natively(file, task) {
  const scratch = fs.mkdtempSync(path.join(dir, 'native-'));
  fs.mkdirSync(path.join(scratch, 'input'));
  fs.mkdirSync(path.join(scratch, 'output'));
  fs.copyFileSync(file, path.join(scratch, 'input', 'chunk.mkv'));
  const env = {
    PATH: process.env.PATH, HOME: scratch, TMPDIR: scratch, LANG: 'C.UTF-8',
    IDLEGRID_PARAMS: '{}', IDLEGRID_TASK: JSON.stringify(task), IDLEGRID_TASK_ID: '12', IDLEGRID_CHUNK_INDEX: '0',
  };
  const started = performance.now();
  execFileSync('python3', ['-E', '-s', '-B', '-u', path.join(TASK_DIR, 'task.py')], { cwd: scratch, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const ms = Math.round(performance.now() - started);
  return { sha256: sha256(fs.readFileSync(path.join(scratch, 'output', 'chunk.mkv'))), ms };
}

/** How long a runner Worker of `page` takes for a script that does nothing: Pyodide's start. */
async function pythonStart(page) {
  const { final, workerMs } = await runInWorker(page, run('open("output/out.txt", "w").write("x")\n'), 'x\n');
  assert.equal(final.type, 'done', JSON.stringify(final));
  return workerMs;
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

test('a cross-origin isolated page runs the threaded core, any other the single-threaded one, of one FFmpeg', async () => {
  const [withThreads, without] = await Promise.all([threaded, single].map(async (page) => {
    const { final } = await runInWorker(page, { type: 'probe' });
    assert.equal(final.type, 'probed', JSON.stringify(final));
    return final;
  }));
  assert.equal(withThreads.ffmpegThreads, true);
  assert.equal(without.ffmpegThreads, false);
  assert.match(withThreads.ffmpeg, /^\d+\.\d+/);
  assert.equal(withThreads.ffmpeg, without.ffmpeg);
});

test('the bytes: the cores agree on one x264 thread; with two, the threaded core\'s own, the same every run', async () => {
  const file = clip('small', '320x240', 1);
  const one = videoTask(320, 240, 25, 1);
  const two = videoTask(320, 240, 25, 2);
  const [threadedOne, singleTwo] = await Promise.all([inBrowser(threaded, file, one), inBrowser(single, file, two)]);
  assert.equal(threadedOne.sha256, singleTwo.sha256, 'the threaded core with one x264 thread gives the single-threaded core\'s bytes');
  const first = await inBrowser(threaded, file, two);
  const again = await inBrowser(threaded, file, two);
  assert.equal(again.sha256, first.sha256, 'the threaded core gives the same bytes every run');
  assert.notEqual(first.sha256, singleTwo.sha256, 'two x264 threads give other bytes than one: the cores are named apart');
  const nativeOne = natively(file, one);
  const nativeTwo = natively(file, two);
  console.log(`320x240 chunk: threaded core ${first.sha256.slice(0, 12)} (2 x264 threads), native ffmpeg ${nativeTwo.sha256.slice(0, 12)}: `
    + `${first.sha256 === nativeTwo.sha256 ? 'the same' : 'other'} bytes; with 1 thread both cores ${threadedOne.sha256.slice(0, 12)}, `
    + `native ${nativeOne.sha256.slice(0, 12)}: ${threadedOne.sha256 === nativeOne.sha256 ? 'the same' : 'other'} bytes`);
});

test('the time of a 4 s 720p chunk at the defaults: natively, and with each core', async () => {
  const file = clip('720p', '1280x720', 4);
  const task = videoTask(1280, 720, 100);
  // Each page's ffmpeg.wasm compiled once already (above), as a working page's is.
  const native = natively(file, task);
  const startThreaded = await pythonStart(threaded);
  const withThreads = await inBrowser(threaded, file, task);
  const startSingle = await pythonStart(single);
  const without = await inBrowser(single, file, task);
  const encoded = path.join(dir, 'encoded.mkv');
  fs.writeFileSync(encoded, withThreads.output);
  const frames = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', encoded], { encoding: 'utf8' });
  assert.equal(frames.trim(), '100', 'every frame of the chunk');
  const ratio = (ms) => `${(ms / native.ms).toFixed(1)}x`;
  console.log(`720p chunk (100 frames, x264 medium, CRF 23, 2 threads): native ${seconds(native.ms)}; `
    + `threaded core ${seconds(withThreads.ms)} (${ratio(withThreads.ms)}; ${seconds(withThreads.ms - startThreaded)} after Python's start of ${seconds(startThreaded)}, ${ratio(withThreads.ms - startThreaded)}); `
    + `single-threaded core ${seconds(without.ms)} (${ratio(without.ms)}; ${seconds(without.ms - startSingle)} after Python's start of ${seconds(startSingle)}, ${ratio(without.ms - startSingle)})`);
  assert.deepEqual(browser.errors, []);
});
