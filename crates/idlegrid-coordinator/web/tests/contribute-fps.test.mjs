// A video job asking for a frame rate other than its source's, on a grid whose only device is a
// browser (the /contribute page, Pyodide + ffmpeg.wasm). The coordinator makes no intermediate
// of the whole video: each chunk is cut from the source by stream copy, and its task tells the
// device the filters making its frames at the new rate (`retime`: FFmpeg's fps filter on a
// microsecond clock, rounding up, then the chunk's last frame repeated up to its count), which
// the task script runs after its `select`. The validator pairs each result frame with the source
// frame its slot pictures, so the job completing proves the browser's ffmpeg.wasm made the same
// frames as the coordinator's arithmetic says; the output is also checked here, apart from it.
// 1. 15 fps from a 30 fps source, on ffmpeg.wasm's multi-threaded core: every other frame.
// 2. 29.97 fps (30000/1001) from a 25 fps source, on the same browser: a frame now and then
//    shown twice, each output frame the source frame shown by its time.
// 3. 15 fps from 30 again, on the single-threaded core (Chromium's WebAssembly memory held
//    under the 1 GiB the threaded core reserves, as in contribute-stills.test.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { call, chunkReport, closeGrid, launchBrowser, linkBrowserWorker, openGrid, recentTasks, sha256, SHORT_OF_MEMORY, waitFor } from './helpers.mjs';

const WIDTH = 320;
const HEIGHT = 240;

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 0 })));
after(() => closeGrid({ grid, browser }));

/**
 * A 4 s 320x240 clip at `rate` frames a second, a keyframe every second, made once. It has no
 * sound: an audio task would only add time, and the frame rate does not touch it.
 */
function clip(rate) {
  const file = path.join(grid.dir, `clip-${rate}.mp4`);
  if (!fs.existsSync(file)) {
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${WIDTH}x${HEIGHT}:rate=${rate}`,
      '-t', '4', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', String(rate), file]);
  }
  return file;
}

/** The luma planes of `file`'s frames, in order, as FFmpeg decodes them. */
function lumaFrames(file) {
  const raw = execFileSync('ffmpeg', ['-v', 'error', '-i', file, '-map', '0:v:0', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'],
    { maxBuffer: 256 << 20 });
  const size = WIDTH * HEIGHT;
  assert.equal(raw.length % size, 0, `${file}: whole ${WIDTH}x${HEIGHT} frames`);
  return Array.from({ length: raw.length / size }, (_, i) => raw.subarray(i * size, (i + 1) * size));
}

/** PSNR of two luma planes, in dB (100 for identical ones). */
function psnr(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += (a[i] - b[i]) ** 2;
  return sum === 0 ? 100 : 10 * Math.log10((255 * 255 * a.length) / sum);
}

/**
 * FFmpeg's luma PSNR of `output` against `source` made into the output's frames by `shape`,
 * frames paired by their order (as crates/idlegrid/tests/video.rs measures it).
 */
function psnrThrough(output, source, shape) {
  const graph = `[0:v]settb=1/30,setpts=N[a];[1:v]${shape},format=yuv420p,settb=1/30,setpts=N[b];[a][b]psnr`;
  // FFmpeg writes the PSNR's summary to its log (stderr): `PSNR y:… u:… v:… average:…`.
  const run = spawnSync('ffmpeg', ['-nostdin', '-hide_banner', '-i', output, '-i', source, '-lavfi', graph, '-f', 'null', '-'],
    { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const y = run.stderr.match(/PSNR y:(\S+)/);
  assert.ok(y, `no PSNR in ${run.stderr}`);
  return y[1] === 'inf' ? 100 : Number(y[1]);
}

/**
 * Links `page` as a browser worker unless it is already, runs a job of `source` at `fps` (chunks
 * of 2 s) on it and checks that it completed on this browser with no failed attempt and that
 * its frames were made on the devices. Returns {device, tasks, linkMs, jobMs, facts, output}:
 * linkMs 0 when it was linked already; the job's facts and the path of its output.
 */
async function runFpsJob(page, source, fps) {
  const linking = Date.now();
  if (!/Waiting for work|Working on/.test(await page.locator('#worker-state').textContent({ timeout: 1000 }).catch(() => ''))) {
    await linkBrowserWorker(page, grid);
  }
  const started = Date.now();
  const deviceId = await page.evaluate(() => JSON.parse(localStorage.getItem('idlegrid.contribute.device')).workerId);
  // What the device had done before (the same browser runs more than one job).
  const earlier = (await call(grid, grid.enrollmentToken, '/v1/owner/devices')).devices.find((d) => d.id === deviceId)
    || { valid: 0, invalid: 0 };

  const job = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'video-transcode', params: { preset: 'source', x264_preset: 'ultrafast', fps }, chunk_seconds: 2 },
  });
  const bytes = fs.readFileSync(source);
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/run`, { method: 'POST' });

  // Waits for the job to end (waitFor would retry a thrown error until its timeout).
  const done = await waitFor(async () => {
    const j = await call(grid, grid.apiKey, `/v1/jobs/${job.id}`);
    return ['completed', 'failed', 'cancelled'].includes(j.state) && j;
  }, {
    timeout: 120_000, interval: 500,
    message: async () => `job ${job.id} did not end\nchunks:\n${await chunkReport(grid, job.id)}\n`
      + `the page's recent tasks: ${JSON.stringify(await recentTasks(page))}\n${grid.logs()}`,
  });
  // A result the validator does not take (frames not those of their slots) is held for another
  // device to run again, and there is none: the job does not end, and the chunks' report and
  // the coordinator's log say why.
  assert.equal(done.state, 'completed', `job ${job.id} ${done.state}: ${JSON.stringify(done.error)}\nchunks:\n`
    + `${await chunkReport(grid, job.id)}\nthe page's recent tasks: ${JSON.stringify(await recentTasks(page))}\n${grid.logs()}`);
  const finished = Date.now();

  // Every task ran in this browser, and none failed an attempt there.
  const { devices } = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  const device = devices.find((d) => d.id === deviceId);
  assert.equal(device.capabilities.runtime, 'browser');
  assert.equal(device.valid - earlier.valid, done.chunks.total, `every task accepted from this browser: ${JSON.stringify(devices)}`);
  assert.equal(device.invalid - earlier.invalid, 0);
  const chunks = (await call(grid, grid.apiKey, `/v1/jobs/${job.id}/tasks`)).tasks;
  assert.deepEqual(chunks.filter((c) => c.failures > 0), [], 'no attempt failed');

  // The new rate was made on the devices, chunk by chunk: no intermediate on the coordinator.
  const notes = done.facts.notes.join('\n');
  assert.match(notes, /frame rate converted/, JSON.stringify(done.facts));
  assert.doesNotMatch(done.facts.split, /intermediate/, done.facts.split);
  assert.match(done.facts.split, /slots at the new rate/, done.facts.split);

  const response = await call(grid, grid.apiKey, `/v1/jobs/${job.id}/output`, { raw: true });
  assert.equal(response.status, 200);
  const output = path.join(grid.dir, `out-${job.id}.mp4`);
  fs.writeFileSync(output, Buffer.from(await response.arrayBuffer()));
  return { device, tasks: done.chunks.total, linkMs: started - linking, jobMs: finished - started, facts: done.facts, output };
}

/** The output's video: codec, size, frame rate and frames counted by decoding them. */
function probeVideo(file) {
  const s = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0',
    '-show_entries', 'stream=codec_name,width,height,r_frame_rate,nb_read_frames', '-of', 'json', file]).toString()).streams[0];
  return { codec: s.codec_name, width: s.width, height: s.height, rate: s.r_frame_rate, frames: Number(s.nb_read_frames) };
}

/** Checks the output of 15 fps from the 30 fps clip: 60 frames, the source's even ones. */
function checkHalfRate(run) {
  const source = clip(30);
  assert.deepEqual(probeVideo(run.output), { codec: 'h264', width: WIDTH, height: HEIGHT, rate: '15/1', frames: 60 }, '4 s at 15 fps');
  const even = psnrThrough(run.output, source, "select='not(mod(n\\,2))'");
  const odd = psnrThrough(run.output, source, "select='mod(n\\,2)'");
  assert.ok(even > 35 && odd < even - 8, `the source's even frames: even ${even.toFixed(1)} dB, odd ${odd.toFixed(1)} dB`);
  return { even, odd };
}

test('15 fps from a 30 fps source, made on a browser worker (multi-threaded ffmpeg.wasm), is the source\'s even frames', async () => {
  const run = await runFpsJob(browser.page, clip(30), 15);
  assert.match(run.device.capabilities.ffmpeg, /\(ffmpeg\.wasm, threads\)$/, 'the threaded core ran it');
  const { even, odd } = checkHalfRate(run);
  console.log(`threaded core, 30 → 15 fps: linked in ${run.linkMs} ms; job of ${run.tasks} tasks done in ${run.jobMs} ms; `
    + `even frames ${even.toFixed(1)} dB, odd ${odd.toFixed(1)} dB`);
  assert.deepEqual(browser.errors, []);
});

test('29.97 fps from a 25 fps source, on the same browser: each output frame is the source frame shown by its time', async () => {
  const source = clip(25);
  const run = await runFpsJob(browser.page, source, 29.97);
  assert.match(run.facts.notes.join('\n'), /from 25\.000 to 29\.970 fps/, JSON.stringify(run.facts.notes));
  // Slots k × 1001/30000 s from 0 to the end (the last frame's 3.96 s plus a frame): 120.
  assert.deepEqual(probeVideo(run.output), { codec: 'h264', width: WIDTH, height: HEIGHT, rate: '30000/1001', frames: 120 });
  // Slot k pictures the latest source frame n shown by its time: n / 25 ≤ k × 1001 / 30000,
  // that is n × 1200 ≤ k × 1001 (worked out here in integers, apart from the coordinator's
  // code). Every output frame is nearest that frame, and far from its neighbours.
  const out = lumaFrames(run.output);
  const src = lumaFrames(source);
  assert.equal(src.length, 100);
  let worst = { right: Infinity };
  let closest = { margin: Infinity };
  for (let k = 0; k < out.length; k += 1) {
    const m = Math.min(Math.floor((k * 1001) / 1200), src.length - 1);
    const right = psnr(out[k], src[m]);
    const wrong = Math.max(...[m - 1, m + 1].filter((n) => n >= 0 && n < src.length).map((n) => psnr(out[k], src[n])));
    assert.ok(right > 35 && wrong < right - 8, `output frame ${k} pictures source frame ${m}: ${right.toFixed(1)} dB, `
      + `its nearest neighbour ${wrong.toFixed(1)} dB`);
    if (right < worst.right) worst = { k, m, right };
    if (right - wrong < closest.margin) closest = { k, m, margin: right - wrong };
  }
  console.log(`threaded core, 25 → 29.97 fps: job of ${run.tasks} tasks done in ${run.jobMs} ms; `
    + `worst frame ${worst.k} (source ${worst.m}) ${worst.right.toFixed(1)} dB, `
    + `least margin over a neighbour ${closest.margin.toFixed(1)} dB (frame ${closest.k})`);
  assert.deepEqual(browser.errors, []);
});

test('and 15 fps from 30 on a browser worker running the single-threaded ffmpeg.wasm', async () => {
  // The first browser goes, so the new one is the only device online.
  await browser.close();
  browser = await launchBrowser({ args: SHORT_OF_MEMORY });
  const run = await runFpsJob(browser.page, clip(30), 15);
  assert.doesNotMatch(run.device.capabilities.ffmpeg, /threads/, `the single-threaded core ran it: ${run.device.capabilities.ffmpeg}`);
  const { even, odd } = checkHalfRate(run);
  console.log(`single-threaded core, 30 → 15 fps: linked in ${run.linkMs} ms; job of ${run.tasks} tasks done in ${run.jobMs} ms; `
    + `even frames ${even.toFixed(1)} dB, odd ${odd.toFixed(1)} dB`);
  assert.deepEqual(browser.errors, []);
});
