// 4. A video-transcode job with HLS on a short generated clip: completes, and the <video>
//    element plays the HLS output (readyState ≥ 2, currentTime advances).
// The job page sums up a video for people (source, output, the HLS ladder, the output's size),
// the raw facts behind a toggle that opens by keyboard; the jobs list shows each job's duration
// (ticking while it runs) and cost in credits; at 1366 and 390 px, without sideways scrolling.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { call, closeGrid, openGrid, sha256, signIn, submitPythonJob, waitFor, waitForFinalState, waitForJobPage, screenshot } from './helpers.mjs';
import { formatBytes, formatCredits, formatDuration } from '../ui/dom.js';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 1, slots: 2 })));
after(() => closeGrid({ grid, browser }));

test('an HLS video job completes and its output plays in the page', async () => {
  const clip = path.join(grid.dir, 'clip.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '4', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
    '-g', '25', '-c:a', 'aac', '-shortest', clip]);
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/new`);
  await page.getByLabel('App', { exact: true }).selectOption('video-transcode');
  await page.getByLabel('Input file').setInputFiles(clip);
  await page.getByLabel('Resolution').selectOption('source');
  await page.getByLabel('x264 preset (slower is smaller)').selectOption('ultrafast');
  await page.getByLabel('Package as HLS (adaptive streaming, several renditions)').check();
  await page.getByLabel('Seconds per chunk').fill('2');
  await page.getByRole('button', { name: 'Create and run' }).click();
  const jobId = await waitForJobPage(page);
  assert.equal(await waitForFinalState(page, grid, jobId, 300_000), 'completed', grid.logs());
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.equal(job.params.hls, true);

  // The facts the coordinator found about the video are shown.
  const factsText = await page.locator('section[aria-labelledby="facts-h"]').textContent();
  assert.match(factsText, /About the video/);
  assert.match(factsText, /320/);

  const video = page.locator('video#player');
  await video.waitFor({ timeout: 20_000 });
  const src = await video.getAttribute('src');
  assert.match(src, /master\.m3u8$/);
  assert.notEqual(await page.evaluate(() => document.createElement('video').canPlayType('application/vnd.apple.mpegurl')), '');
  await video.evaluate((v) => { v.muted = true; return v.play(); });
  await waitFor(() => video.evaluate((v) => v.readyState >= 2 && v.currentTime > 0.5), {
    timeout: 30_000,
    message: async () => `video: ${JSON.stringify(await video.evaluate((v) => ({ readyState: v.readyState, currentTime: v.currentTime, error: v.error && v.error.message, networkState: v.networkState })))}`,
  });
  const state = await video.evaluate((v) => ({ readyState: v.readyState, t: v.currentTime, w: v.videoWidth, h: v.videoHeight }));
  assert.ok(state.readyState >= 2);
  assert.ok(state.w > 0 && state.h > 0, `video size ${state.w}x${state.h}`);
  await screenshot(page, 'job-video-hls');
  // The output itself, through the page's signed link, checked with ffprobe: H.264 at the
  // source's size, every frame of the 4 s clip (25 fps).
  const probed = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames',
    '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', new URL(src, grid.url).href]).toString());
  const stream = probed.streams[0];
  assert.equal(stream.codec_name, 'h264');
  assert.equal(`${stream.width}x${stream.height}`, '320x240');
  assert.equal(Number(stream.nb_read_frames), 100);
  assert.deepEqual(browser.errors, []);
});

/** Whether the page scrolls sideways at its viewport's width. */
const sideways = (p) => p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);

test('the job page sums up the video; the jobs list shows duration and cost', async () => {
  assert.equal(formatCredits(420_000, { short: true }), '0.42 credits');
  assert.equal(formatCredits(10, { short: true }), '0.00001 credits');
  assert.equal(formatCredits(12_000_000, { short: true }), '12.00 credits');
  const clip = path.join(grid.dir, 'ladder.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-g', '25', '-c:a', 'aac', '-shortest', clip]);
  const created = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST',
    body: { app: 'video-transcode', params: { preset: 'source', x264_preset: 'ultrafast', hls: true, ladder: ['480p', '360p'] }, chunk_seconds: 2 },
  });
  const bytes = fs.readFileSync(clip);
  await call(grid, grid.apiKey, `/v1/jobs/${created.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${created.id}/run`, { method: 'POST' });
  const job = await waitFor(async () => {
    const j = await call(grid, grid.apiKey, `/v1/jobs/${created.id}`);
    if (j.state === 'failed') throw new Error(`job failed: ${j.error}`);
    return j.state === 'completed' && j;
  }, { timeout: 300_000, interval: 500, message: () => `the ladder job did not complete\n${grid.logs()}` });
  const { renditions } = job.facts.hls;
  assert.equal(renditions.length, 2, JSON.stringify(job.facts));

  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1366, height: 900 });
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  const summary = page.locator('.video-facts');
  await summary.waitFor();
  const text = (await summary.textContent()).replace(/\s+/g, ' ');
  assert.match(text, /Source ?Video ?H\.264, 854×480, 25 fps/);
  assert.match(text, /Duration ?3\.0 s \(75 frames\)/);
  assert.match(text, /Audio ?1 audio stream, 3\.0 s/);
  assert.match(text, /Output ?Video ?H\.264, 854×480, with audio/);
  assert.ok(text.includes(`HLS ladder2 renditions: ${renditions.map((r) => `${r.width}×${r.height}`).join(', ')}; 6.0 s segments`), text);
  assert.ok(text.includes(`Size${formatBytes(job.output.size)}`), text);
  assert.match(formatBytes(job.output.size), /^\d+(\.\d)? (KiB|MiB)$/);
  // The raw facts: closed, opened by keyboard, the JSON the API gave.
  const raw = page.locator('details.raw-facts');
  assert.equal(await raw.evaluate((d) => d.open), false);
  assert.equal(await raw.locator('pre').isVisible(), false);
  await raw.locator('summary').focus();
  await page.keyboard.press('Enter');
  await raw.locator('pre').waitFor({ state: 'visible' });
  assert.deepEqual(JSON.parse(await raw.locator('pre').textContent()), job.facts);
  assert.equal(await sideways(page), false, 'the job page at 1366 px');
  await screenshot(page, 'job-video-summary', { docs: 'wide' });
  await page.setViewportSize({ width: 390, height: 844 });
  assert.equal(await sideways(page), false, 'the job page at 390 px');
  await screenshot(page, 'job-video-summary-phone');

  // The jobs list: how long the job ran (from run to its end) and what it was charged.
  await page.setViewportSize({ width: 1366, height: 900 });
  await page.goto(`${grid.url}/#/jobs`);
  const row = page.locator(`tr[data-job="${job.id}"]`);
  await row.waitFor();
  const ran = (Date.parse(job.finished_at) - Date.parse(job.submitted_at)) / 1000;
  assert.equal(await row.locator('td.duration').textContent(), formatDuration(ran));
  assert.ok(job.cost.charged > 0);
  const cost = await row.locator('td.cost').textContent();
  assert.equal(cost, formatCredits(job.cost.charged, { short: true }));
  assert.equal(Number(cost.split(' ')[0]), job.cost.charged / 1e6, 'the cost in credits, exactly');
  // A running job's duration goes on between its events.
  const slow = await submitPythonJob(grid, { script: 'import time\ntime.sleep(6)\nprint(1)\n', input: 'x\n' });
  const slowRow = page.locator(`tr[data-job="${slow.id}"]`);
  await waitFor(async () => (await slowRow.locator('.badge').getAttribute('data-state', { timeout: 1000 })) === 'running', {
    timeout: 30_000, message: () => 'the slow job does not run',
  });
  const before = await slowRow.locator('td.duration').textContent();
  await page.waitForTimeout(2500);
  const after = await slowRow.locator('td.duration').textContent();
  assert.match(after, /^\d+ s so far$/);
  assert.ok(Number.parseInt(after, 10) > Number.parseInt(before, 10), `${before} then ${after}`);
  await screenshot(page, 'jobs-list');
  await page.setViewportSize({ width: 390, height: 844 });
  assert.equal(await sideways(page), false, 'the jobs list at 390 px');
  const box = await row.locator('td.cost').boundingBox();
  assert.ok(box && box.x + box.width <= 390, `the cost is on the phone's screen: ${JSON.stringify(box)}`);
  await screenshot(page, 'jobs-list-phone');
  await page.close();
  assert.deepEqual(browser.errors, []);
});
