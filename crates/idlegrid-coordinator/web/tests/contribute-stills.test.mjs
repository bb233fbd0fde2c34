// A video job with stills and a watermark on a grid whose only device is a browser (the
// /contribute page, Pyodide + ffmpeg.wasm): the task script writes the watermark's PNG in its
// working directory and lays it over the frames with FFmpeg's `movie` source and `overlay`, and
// makes the stills with one more FFmpeg run (`-filter_complex` split + select + scale, one JPEG
// output each, written in the working directory) that the encode attaches to output/chunk.mkv
// (`-attach`). The coordinator checks the browser's results as any device's (each still must
// picture its frame, the watermark must be there), so the job completing proves the browser
// made them right. Its facts count the thumbnails, and its output is a tar holding the video,
// the poster and the thumbnails' index; the video and the poster show the watermark.
// 1. On ffmpeg.wasm's multi-threaded core (Chromium's page is cross-origin isolated).
// 2. On its single-threaded core, which a device runs when the threaded one cannot start (here
//    Chromium's WebAssembly memory is held under the 1 GiB the threaded core reserves, as in
//    ffmpeg-fallback.test.mjs), and a browser without JSPI always does: its MJPEG encoder needs
//    more than the core's own 64 KiB stack (runner.js, FFMPEG_STACK_BYTES).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { call, chunkReport, closeGrid, launchBrowser, linkBrowserWorker, openGrid, recentTasks, sha256, SHORT_OF_MEMORY, waitFor } from './helpers.mjs';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 0 })));
after(() => closeGrid({ grid, browser }));

/** The names of the regular files in a ustar archive, in order. */
function tarNames(bytes) {
  const names = [];
  for (let at = 0; at + 512 <= bytes.length;) {
    const header = bytes.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const field = (from, length) => header.subarray(from, from + length).toString('latin1').replace(/\0.*$/s, '');
    const name = field(0, 100);
    const prefix = field(345, 155);
    const size = Number.parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1);
    if (type === '0' || type === '') names.push(prefix ? `${prefix}/${name}` : name);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

/** The 4 s 320x240 clip and the watermark's PNG (32x16, red), made once. */
function sources() {
  const clip = path.join(grid.dir, 'clip.mp4');
  const mark = path.join(grid.dir, 'mark.png');
  if (!fs.existsSync(clip)) {
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '4', '-c:v', 'libx264', '-preset', 'ultrafast',
      '-pix_fmt', 'yuv420p', '-g', '25', '-c:a', 'aac', '-shortest', clip]);
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'color=c=red:size=32x16',
      '-frames:v', '1', '-c:v', 'png', '-f', 'image2', mark]);
  }
  return { clip, mark };
}

/**
 * Links `page` as a browser worker, runs the job on it (chunks of 2 s, a thumbnail every second
 * 96 px wide, a poster at 1 s, the red PNG a quarter of the width wide, opaque) and checks what
 * it made. Returns {device, linkMs, jobMs, names}.
 */
async function runStillsJob(page) {
  const started = Date.now();
  await linkBrowserWorker(page, grid);
  const linked = Date.now();
  const deviceId = await page.evaluate(() => JSON.parse(localStorage.getItem('idlegrid.contribute.device')).workerId);

  const { clip, mark } = sources();
  const params = {
    preset: 'source', x264_preset: 'ultrafast', thumbnails: { every: 1, width: 96 }, poster: 1.0,
    watermark: { image: fs.readFileSync(mark).toString('base64'), width: 0.25, opacity: 1 },
  };
  const job = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'video-transcode', params, chunk_seconds: 2 },
  });
  const bytes = fs.readFileSync(clip);
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
  assert.equal(done.state, 'completed', `job ${job.id} ${done.state}: ${JSON.stringify(done.error)}\nchunks:\n`
    + `${await chunkReport(grid, job.id)}\nthe page's recent tasks: ${JSON.stringify(await recentTasks(page))}`);
  const finished = Date.now();

  // Every task ran in this browser, and none failed an attempt there.
  const { devices } = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  const device = devices.find((d) => d.id === deviceId);
  assert.equal(device.capabilities.runtime, 'browser');
  assert.equal(device.valid, done.chunks.total, `every task accepted from this browser: ${JSON.stringify(devices)}`);
  assert.equal(device.invalid, 0);
  const chunks = (await call(grid, grid.apiKey, `/v1/jobs/${job.id}/tasks`)).tasks;
  assert.deepEqual(chunks.filter((c) => c.failures > 0), [], 'no attempt failed');

  // The stills, as the job's facts count them.
  assert.equal(done.facts.output.archive, true, JSON.stringify(done.facts));
  assert.deepEqual(done.facts.stills.thumbnails, { every: 1, width: 96, height: 72, count: 4 });
  assert.deepEqual(done.facts.stills.poster, { frame: 25, width: 320, height: 240 });

  // The output: a tar of the video, the poster and the thumbnails (their index and sheets).
  const response = await call(grid, grid.apiKey, `/v1/jobs/${job.id}/output`, { raw: true });
  assert.equal(response.status, 200);
  const archive = Buffer.from(await response.arrayBuffer());
  const names = tarNames(archive);
  for (const name of ['video.mp4', 'poster.jpg', 'thumbnails/thumbnails.vtt']) {
    assert.ok(names.includes(name), `${name} in the archive: ${JSON.stringify(names)}`);
  }
  const out = path.join(grid.dir, `out-${job.id}`);
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'output.tar'), archive);
  execFileSync('tar', ['-xf', 'output.tar'], { cwd: out });
  const probe = (file, entries) => JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0',
    '-show_entries', entries, '-of', 'json', path.join(out, file)]).toString()).streams[0];
  const video = probe('video.mp4', 'stream=codec_name,width,height,nb_read_frames');
  assert.deepEqual([video.codec_name, video.width, video.height, Number(video.nb_read_frames)], ['h264', 320, 240, 100]);
  const poster = probe('poster.jpg', 'stream=codec_name,width,height');
  assert.deepEqual([poster.codec_name, poster.width, poster.height], ['mjpeg', 320, 240]);
  // The watermark as asked, apart from the coordinator's check: an 80x40 red box (a quarter of
  // the width, the PNG's shape) at the bottom right, 10 px (3 %) from the edges, opaque, on
  // every frame of the video and on the poster.
  const box = 'crop=80:40:230:190';
  for (const [file, count] of [['video.mp4', 100], ['poster.jpg', 1]]) {
    const raw = execFileSync('ffmpeg', ['-v', 'error', '-i', path.join(out, file), '-vf', box, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
      { maxBuffer: 64 << 20 });
    const size = 80 * 40 * 3;
    assert.equal(raw.length, count * size, `${file}: ${count} frames of the box`);
    for (let frame = 0; frame < count; frame += 1) {
      const mean = [0, 1, 2].map((c) => {
        let sum = 0;
        for (let i = frame * size + c; i < (frame + 1) * size; i += 3) sum += raw[i];
        return sum / (80 * 40);
      });
      assert.ok(mean[0] > 230 && mean[1] < 25 && mean[2] < 25, `${file}, frame ${frame}: the watermark's box is red, not ${mean.map(Math.round)}`);
    }
  }
  const cues = fs.readFileSync(path.join(out, 'thumbnails', 'thumbnails.vtt'), 'utf8').split('\n').filter((l) => l.includes('-->'));
  assert.equal(cues.length, 4, 'a cue for each thumbnail');
  return { device, tasks: done.chunks.total, linkMs: linked - started, jobMs: finished - linked, names };
}

test('a video job with thumbnails, a poster and a watermark completes on a browser worker (multi-threaded ffmpeg.wasm)', async () => {
  const run = await runStillsJob(browser.page);
  assert.match(run.device.capabilities.ffmpeg, /\(ffmpeg\.wasm, threads\)$/, 'the threaded core ran it');
  console.log(`threaded core: linked in ${run.linkMs} ms; job of ${run.tasks} tasks done in ${run.jobMs} ms; archive: ${run.names.join(', ')}`);
  assert.deepEqual(browser.errors, []);
});

test('and on a browser worker running the single-threaded ffmpeg.wasm', async () => {
  // The first browser goes, so the new one is the only device online.
  await browser.close();
  browser = await launchBrowser({ args: SHORT_OF_MEMORY });
  const run = await runStillsJob(browser.page);
  assert.doesNotMatch(run.device.capabilities.ffmpeg, /threads/, `the single-threaded core ran it: ${run.device.capabilities.ffmpeg}`);
  console.log(`single-threaded core: linked in ${run.linkMs} ms; job of ${run.tasks} tasks done in ${run.jobMs} ms`);
  assert.deepEqual(browser.errors, []);
});
