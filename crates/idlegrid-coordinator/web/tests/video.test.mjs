// 4. A video-transcode job with HLS on a short generated clip: completes, and the <video>
//    element plays the HLS output (readyState ≥ 2, currentTime advances).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { call, closeGrid, openGrid, signIn, waitFor, waitForFinalState, waitForJobPage, screenshot } from './helpers.mjs';

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
