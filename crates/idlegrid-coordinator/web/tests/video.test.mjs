// 4. A video-transcode job with a streaming ladder on a short generated clip, made from the
//    form: completes, and the <video> element plays its HLS playlist with Chromium's own HLS
//    player (readyState ≥ 2, currentTime advances), without loading dash.js.
// Streaming outputs elsewhere: a browser without an HLS player of its own (Chromium with its
// canPlayType answering so, as Firefox does) plays a two-rendition ladder through dash.js,
// imported from /runtimes/ for that page only, under the dashboard's CSP; without the runtimes
// served, or for an output without a DASH manifest, the page says so and links to the
// playlist and the manifest; the DASH player's errors are shown as text. The form sends a
// streaming ladder in any codec (HEVC here, as the coordinator takes it) and refuses one with
// Copy or outside MP4, as the coordinator does.
// The job page sums up a video for people (source, output, the HLS ladder, the output's size),
// the raw facts behind a toggle that opens by keyboard; the jobs list shows each job's duration
// (ticking while it runs) and cost in credits; at 1366 and 390 px, without sideways scrolling.
// The new-job form's codec, container, speed, sound and subtitle fields: combinations the
// coordinator refuses are refused on the page with a message saying what to change, only what
// differs from the defaults is sent; the output's codec, container, tracks and subtitles are
// shown as text. The last test (AV1 in WebM, created from the form) needs a coordinator that
// knows those parameters.
// Quality targets: the form's Quality choice sends a rate factor or a target (PSNR or SSIM,
// within the coordinator's ranges), never both (which the coordinator refuses with a 422 whose
// message the form would show); a target job on a noisy clip completes and the job page sums up
// what each chunk's device measured, in a table that scrolls in its own box (as text, several
// renditions, unread reports, hundreds of chunks at 390 px).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { assertNoSidewaysScroll, call, closeGrid, openGrid, sha256, signIn, submitPythonJob, unlabelledControls, videoWhen, waitFor, waitForFinalState, waitForJobPage, withoutNativeHls, screenshot } from './helpers.mjs';
import { ensureRuntimes } from './static-server.mjs';
import { formatBytes, formatCredits, formatDuration } from '../ui/dom.js';

let grid;
let browser;
/** runtimes.json of the runtimes the coordinator serves (dash.js among them). */
let runtimes;

before(async () => {
  // In place before the coordinator starts, which serves them only if they are there then.
  runtimes = ensureRuntimes();
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2 }));
  // The ladder job the later tests look at runs beside the first test's job (two slots).
  ladderJob().catch(() => {});
});
after(() => closeGrid({ grid, browser }));

test('a streaming video job made from the form completes and plays with the browser\'s own HLS player', async () => {
  const clip = path.join(grid.dir, 'clip.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '4', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
    '-g', '25', '-c:a', 'aac', '-shortest', clip]);
  const { page } = browser;
  const runtimeRequests = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/runtimes/')) runtimeRequests.push(r.url()); });
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/new`);
  await page.getByLabel('App', { exact: true }).selectOption('video-transcode');
  await page.getByLabel('Input file').setInputFiles(clip);
  await page.getByLabel('Resolution').selectOption('source');
  await page.getByLabel('Encoder speed (slower is smaller)').selectOption('ultrafast');
  await page.getByLabel('Streaming ladder (HLS + DASH)').check();
  await page.getByLabel('Seconds per chunk').fill('2');
  const created = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs');
  await page.getByRole('button', { name: 'Create and run' }).click();
  // H.264's speed goes as x264_preset, as before there was a choice of codec; nothing else new.
  assert.deepEqual((await created).postDataJSON().params, { preset: 'source', x264_preset: 'ultrafast', hls: true });
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
  // This Chromium plays HLS itself (its built-in player), so the page gives it the playlist.
  assert.notEqual(await page.evaluate(() => document.createElement('video').canPlayType('application/vnd.apple.mpegurl')), '');
  assert.equal(await video.getAttribute('data-playback'), 'hls');
  assert.equal(await page.locator('#hls-link').getAttribute('href'), src);
  assert.match(await page.locator('#dash-link').getAttribute('href'), /^\/v1\/links\/[^/]+\/hls\/manifest\.mpd$/);
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
  assert.deepEqual(runtimeRequests, [], 'no runtime (dash.js) is loaded where the browser plays HLS itself');
  assert.deepEqual(browser.errors, []);
});

/** Whether the page scrolls sideways at its viewport's width. */
const sideways = (p) => p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);

let ladder = null;
/**
 * A completed two-rendition streaming job (480p and 360p of a 3 s 854x480 clip with sound, two
 * chunks), made through the API once for the tests that look at one.
 */
function ladderJob() {
  ladder ||= (async () => {
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
    // Waits for any end (waitFor takes a throw for "not yet"), so a failed job fails at once.
    const job = await waitFor(async () => {
      const j = await call(grid, grid.apiKey, `/v1/jobs/${created.id}`);
      return ['completed', 'failed', 'cancelled'].includes(j.state) && j;
    }, { timeout: 300_000, interval: 500, message: () => `the ladder job did not finish\n${grid.logs()}` });
    assert.equal(job.state, 'completed', `the ladder job: ${job.error}\n${grid.logs()}`);
    return job;
  })();
  return ladder;
}

test('the job page sums up the video; the jobs list shows duration and cost', async () => {
  assert.equal(formatCredits(420_000, { short: true }), '0.42 credits');
  assert.equal(formatCredits(10, { short: true }), '0.00001 credits');
  assert.equal(formatCredits(12_000_000, { short: true }), '12.00 credits');
  const job = await ladderJob();
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
  assert.ok(text.includes('ContainerCMAF: HLS playlists and a DASH manifest over the same segments, in a tar'), text);
  assert.ok(text.includes(`Streaming ladder2 renditions: ${renditions.map((r) => `${r.width}×${r.height}`).join(', ')}; 6.0 s segments`), text);
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

test('a browser without HLS of its own plays the ladder through dash.js, loaded from /runtimes/ for that page only', async () => {
  assert.ok(runtimes.dirs.dashjs, JSON.stringify(runtimes));
  const job = await ladderJob();
  const page = await browser.context.newPage();
  await withoutNativeHls(page);
  const responses = [];
  page.on('response', (r) => responses.push({ path: new URL(r.url()).pathname, status: r.status(), headers: r.headers() }));
  await signIn(page, grid, grid.apiKey);
  assert.equal(responses.filter((r) => r.path.startsWith('/runtimes/')).length, 0, 'dash.js is not loaded by the other pages');
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  const video = page.locator('video#player');
  await video.waitFor();
  assert.equal(await video.getAttribute('data-playback'), 'dash');

  // Both links, the manifest served as DASH.
  const hlsHref = await page.locator('#hls-link').getAttribute('href');
  const dashHref = await page.locator('#dash-link').getAttribute('href');
  assert.match(hlsHref, /^\/v1\/links\/[^/]+\/hls\/master\.m3u8$/);
  assert.match(dashHref, /^\/v1\/links\/[^/]+\/hls\/manifest\.mpd$/);
  assert.equal(await page.locator('#hls-link').textContent(), 'master.m3u8');
  assert.equal(await page.locator('#dash-link').textContent(), 'manifest.mpd');
  const mpd = await fetch(new URL(dashHref, grid.url));
  assert.equal(mpd.status, 200);
  assert.match(mpd.headers.get('content-type'), /^application\/dash\+xml/);
  assert.match(await mpd.text(), /<MPD[\s>]/);

  // dash.js attaches a media source (a blob: URL, which the page's CSP allows as media) ...
  await videoWhen(video, { readyState: 1, blob: true }, ['loadedmetadata', 'durationchange', 'canplay']);
  // ... and the video plays: frames decoded, the clock going on.
  await video.evaluate((v) => { v.muted = true; return v.play(); });
  const state = await videoWhen(video, { readyState: 2, currentTime: 0.5, size: true }, ['timeupdate', 'playing', 'resize']);
  // One of the renditions (the 360p one's width as shown: its pixels are a shade wide, to keep
  // the source's 427:240 exactly, so 641 rather than 640).
  const rendition = job.facts.hls.renditions.find((r) => r.height === state.h);
  assert.ok(rendition && Math.abs(rendition.width - state.w) <= 1, `a rendition's size: ${JSON.stringify(state)}`);
  assert.equal(await page.locator(`section[aria-labelledby="output-${job.id}"] .alert`).count(), 0, 'no player error shown');

  // dash.js came from the versioned runtime directory (kept for a year), and played the DASH
  // manifest's segments, not the HLS playlists.
  const player = responses.find((r) => r.path === `/runtimes/${runtimes.dirs.dashjs}dash.mediaplayer.min.js`);
  assert.ok(player, `dash.js loaded: ${JSON.stringify(responses.map((r) => r.path))}`);
  assert.equal(player.status, 200);
  assert.match(player.headers['content-type'], /javascript/);
  assert.equal(player.headers['cache-control'], 'public, max-age=31536000, immutable');
  const streamed = responses.filter((r) => r.path.includes('/hls/')).map((r) => r.path.split('/').pop());
  assert.ok(streamed.includes('manifest.mpd') && !streamed.includes('master.m3u8'), JSON.stringify(streamed));
  assert.ok(streamed.some((name) => /^init-\d+\.m4s$/.test(name)) && streamed.some((name) => /^segment-\d+-\d+\.m4s$/.test(name)), JSON.stringify(streamed));
  await screenshot(page, 'job-video-dash');
  // Leaving the page stops the player (no error from it afterwards).
  await page.goto(`${grid.url}/#/jobs`);
  await page.locator('h1#page-title').waitFor();
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('without dash.js served, or for an output without a DASH manifest, the page says so and links to the playlists; player errors show as text', async () => {
  const job = await ladderJob();
  const page = await browser.context.newPage();
  await withoutNativeHls(page);
  await signIn(page, grid, grid.apiKey);
  const output = page.locator(`section[aria-labelledby="output-${job.id}"]`);
  const video = page.locator('video#player');

  // A coordinator started without --browser-runtimes answers /runtimes/ with this 404.
  await page.route((url) => url.pathname.startsWith('/runtimes/'), (route) => route.fulfill({
    status: 404, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'no_browser_runtimes', message: 'this coordinator serves no browser runtimes: run scripts/browser-runtimes.sh and start it with --browser-runtimes DIR' } }),
  }));
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  const notice = output.locator('.player-notice .notice');
  await notice.waitFor();
  assert.equal(await notice.textContent(), 'This browser cannot play HLS itself, and this coordinator does not serve the DASH player '
    + '(its operator can install it with scripts/browser-runtimes.sh). Play manifest.mpd or master.m3u8 (links below) with a player that can, or download the archive.');
  assert.equal(await video.isVisible(), false, 'no player that cannot play');
  assert.match(await page.locator('#hls-link').getAttribute('href'), /master\.m3u8$/);
  assert.match(await page.locator('#dash-link').getAttribute('href'), /manifest\.mpd$/);
  assert.equal(await output.locator('.alert').count(), 0, 'a notice, not an error');
  await screenshot(page, 'job-video-no-dash-player');
  await page.unroute((url) => url.pathname.startsWith('/runtimes/'));

  // An output packaged before DASH manifests: its links have none.
  await page.route((url) => url.pathname === `/v1/jobs/${job.id}/links`, async (route) => {
    const response = await route.fetch();
    const links = await response.json();
    delete links.dash;
    return route.fulfill({ response, json: links });
  });
  await page.goto(`${grid.url}/#/jobs`);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  await notice.waitFor();
  assert.equal(await notice.textContent(), 'This browser cannot play HLS itself, and this output has no DASH manifest (it was packaged before they were made). '
    + 'Play master.m3u8 (link below) with a player that can, or download the archive.');
  assert.equal(await page.locator('#dash-link').count(), 0);
  assert.match(await page.locator('#hls-link').getAttribute('href'), /master\.m3u8$/);
  await page.unrouteAll();

  // A manifest the player cannot read: its error, as text (not markup).
  await page.route((url) => url.pathname.endsWith('/manifest.mpd'), (route) => route.fulfill({
    status: 200, contentType: 'application/dash+xml', body: '<img src=x onerror="window.injected=1">',
  }));
  const errorsBefore = browser.errors.length;
  await page.goto(`${grid.url}/#/jobs`);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  const alert = output.locator('.alert');
  await alert.waitFor({ timeout: 30_000 });
  const said = await alert.textContent();
  assert.match(said, /^The video could not be played \(DASH player error \d+: .+\)\.$/);
  assert.doesNotMatch(said, /\/v1\/links\//, 'the signed link is not spelled out');
  assert.equal(await page.evaluate(() => window.injected || null), null);
  assert.equal(await output.locator('.alert img').count(), 0);
  await screenshot(page, 'job-video-dash-error');
  // dash.js also logs that error to the console: expected here, and only here.
  const logged = browser.errors.splice(errorsBefore);
  assert.ok(logged.every((e) => /dash|manifest|MPD/i.test(e)), JSON.stringify(logged));
  await page.close();
  assert.deepEqual(browser.errors, []);
});

/** The new-job form with the video app chosen and `file` as its input, in a page of its own. */
async function videoForm(file) {
  const page = await browser.context.newPage();
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/new`);
  await page.getByLabel('App', { exact: true }).selectOption('video-transcode');
  await page.getByLabel('Input file').setInputFiles(file);
  return page;
}

const isCreate = (r) => r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs';

test('the new-job form refuses codecs a container cannot carry, saying what to change, and sends only what differs from the defaults', async () => {
  const clip = path.join(grid.dir, 'form.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', clip]);
  const page = await videoForm(clip);
  // No job is created here: what the form would send is caught and answered by the test.
  const sent = [];
  await page.route((url) => url.pathname === '/v1/jobs', (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    sent.push(route.request().postDataJSON());
    return route.fulfill({ status: 422, contentType: 'application/json', body: JSON.stringify({ error: { code: 'caught', message: 'caught by the test' } }) });
  });
  const submit = page.getByRole('button', { name: 'Create and run' });
  const alert = page.locator('form [role="alert"]');
  const note = page.locator('.combo-note');
  const codec = page.getByLabel('Video codec');
  const container = page.getByLabel('Container');
  const audio = page.getByLabel('Audio codec');
  assert.equal(await note.isVisible(), false, 'no note while the choices go together');

  // H.264 in WebM: said at once beside the fields, and refused on submit with the codec to change.
  await container.selectOption('webm');
  const webm = 'A WebM file cannot carry H.264 video: choose AV1 or VP9 as the video codec, or another container.';
  await waitFor(async () => (await note.textContent()) === webm, { timeout: 5000, message: async () => `the note says: ${await note.textContent()}` });
  assert.equal(await note.isVisible(), true);
  await submit.click();
  await alert.waitFor();
  assert.equal(await alert.textContent(), webm);
  assert.equal(await codec.getAttribute('aria-invalid'), 'true');
  assert.equal(await codec.evaluate((el) => el === document.activeElement), true, 'the video codec is focused, to be changed');
  await screenshot(page, 'new-job-video-webm-refused');
  // Fixed by choosing VP9: the note goes.
  await codec.selectOption('vp9');
  await waitFor(async () => !(await note.isVisible()), { timeout: 5000, message: 'the note stays once VP9 is chosen' });
  // A streaming ladder goes with VP9, but not in WebM: the container to change.
  await page.getByLabel('Streaming ladder (HLS + DASH)').check();
  await submit.click();
  await waitFor(async () => (await alert.textContent()) === 'A streaming ladder is MP4 segments with HLS playlists and a DASH manifest, in one archive: '
    + 'leave the container at MP4, or turn the streaming ladder off.', {
    timeout: 5000, message: async () => `the alert says: ${await alert.textContent()}`,
  });
  assert.equal(await container.getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Streaming ladder (HLS + DASH)').uncheck();
  // AAC in WebM: the audio codec to change, and what to choose instead.
  await audio.selectOption('aac');
  await submit.click();
  await waitFor(async () => (await alert.textContent()) === 'A WebM file cannot carry AAC audio: choose Opus (or Default) as the audio codec.', {
    timeout: 5000, message: async () => `the alert says: ${await alert.textContent()}`,
  });
  assert.equal(await audio.getAttribute('aria-invalid'), 'true');
  await audio.selectOption('');
  assert.equal(await audio.locator('option').first().textContent(), 'Default (Opus)', 'WebM\'s default sound is Opus');
  // The CRF range is the codec's.
  const crf = page.locator('input[name="crf"]');
  assert.equal(await page.locator(`label[for="${await crf.getAttribute('id')}"]`).textContent(), 'Quality (CRF, 0–63 for VP9, lower is better)');
  await crf.fill('64');
  await submit.click();
  await waitFor(async () => (await alert.textContent()) === 'CRF for VP9 must be a whole number from 0 to 63.', {
    timeout: 5000, message: async () => `the alert says: ${await alert.textContent()}`,
  });
  // Languages must be codes.
  await crf.fill('40');
  await page.getByLabel('Audio tracks').selectOption('languages');
  await page.getByLabel('Audio languages').fill('english');
  await submit.click();
  await waitFor(async () => /^“english” is not a language code/.test(await alert.textContent()), {
    timeout: 5000, message: async () => `the alert says: ${await alert.textContent()}`,
  });
  assert.deepEqual(sent, [], 'nothing refused was sent');

  // Sent: VP9 in WebM at speed 2, with the French and English tracks and no subtitles.
  await page.getByLabel('Audio languages').fill('FRA, eng');
  const speed = page.getByLabel('Encoder speed (slower is smaller)');
  assert.deepEqual(await speed.locator('option').evaluateAll((os) => os.map((o) => o.value)), ['', '0', '1', '2', '3', '4', '5', '6', '7', '8']);
  await speed.selectOption('2');
  await page.getByLabel('Keep subtitles').uncheck();
  await submit.click();
  await waitFor(() => sent.length === 1, { timeout: 5000, message: 'the form sent nothing' });
  assert.deepEqual(sent[0].params, {
    preset: '720p', video_codec: 'vp9', container: 'webm', crf: 40, speed: '2', audio_tracks: ['fra', 'eng'], subtitles: false,
  });

  // Copy: the encoding fields are off and not sent; nor is what is left at its default.
  await codec.selectOption('copy');
  for (const label of ['Resolution', 'Encoder speed (slower is smaller)']) {
    assert.equal(await page.getByLabel(label).isDisabled(), true, `${label} is off when copying`);
  }
  // The streaming ladder stays open, so that one checked can be turned off (it is refused with Copy).
  assert.equal(await page.getByLabel('Streaming ladder (HLS + DASH)').isDisabled(), false);
  assert.equal(await crf.isDisabled(), true);
  assert.equal(await page.locator('.copy-note').isVisible(), true);
  await container.selectOption('mkv');
  await audio.selectOption('copy');
  await page.getByLabel('Audio tracks').selectOption('first');
  await submit.click();
  await waitFor(() => sent.length === 2, { timeout: 5000, message: 'the form sent nothing' });
  assert.deepEqual(sent[1].params, { video_codec: 'copy', container: 'mkv', audio_codec: 'copy', audio_tracks: 'first', subtitles: false });

  // Back to H.264 in MP4 with every default: what was sent before there was a choice.
  await codec.selectOption('h264');
  await container.selectOption('mp4');
  await audio.selectOption('');
  await page.getByLabel('Audio tracks').selectOption('all');
  await page.getByLabel('Keep subtitles').check();
  await crf.fill('');
  assert.equal(await speed.inputValue(), '', 'H.264 starts at its default speed');
  assert.equal(await speed.locator('option').first().textContent(), 'Default (medium)');
  await submit.click();
  await waitFor(() => sent.length === 3, { timeout: 5000, message: 'the form sent nothing' });
  assert.deepEqual(sent[2].params, { preset: '720p' });

  // Every field labelled, the form readable on a phone.
  assert.deepEqual(await unlabelledControls(page), []);
  await page.setViewportSize({ width: 390, height: 844 });
  await container.selectOption('webm');
  await assertNoSidewaysScroll(page, 'the new-job form at 390 px');
  await screenshot(page, 'new-job-video-phone');
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('the new-job form sends a streaming ladder in any codec (HEVC here) and refuses one with Copy or outside MP4, as the coordinator does', async () => {
  const clip = path.join(grid.dir, 'stream-form.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', clip]);
  const page = await videoForm(clip);
  // What the form would send is caught and answered here: no job runs.
  const sent = [];
  await page.route((url) => url.pathname === '/v1/jobs', (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    sent.push(route.request().postDataJSON());
    return route.fulfill({ status: 422, contentType: 'application/json', body: JSON.stringify({ error: { code: 'caught', message: 'caught by the test' } }) });
  });
  const submit = page.getByRole('button', { name: 'Create and run' });
  const alert = page.locator('form [role="alert"]');
  const note = page.locator('.combo-note');
  const ladderBox = page.getByLabel('Streaming ladder (HLS + DASH)');
  const codec = page.getByLabel('Video codec');
  const saysAlert = (text) => waitFor(async () => (await alert.textContent({ timeout: 1000 })) === text, {
    timeout: 5000, message: async () => `the alert says: ${await alert.textContent().catch(() => '(none)')}, not ${text}`,
  });
  // The hint says what the option is now: any codec, both kinds of playlist.
  const hint = page.locator(`#${await ladderBox.getAttribute('aria-describedby')}`);
  assert.match(await hint.textContent(), /in any codec, as MP4 segments with HLS playlists and a DASH manifest/);
  assert.doesNotMatch(await hint.textContent(), /H\.264 only/);

  // HEVC with a streaming ladder: no note, sent as it is.
  await codec.selectOption('hevc');
  await ladderBox.check();
  assert.equal(await note.isVisible(), false, 'HEVC and a streaming ladder go together');
  await submit.click();
  await waitFor(() => sent.length === 1, { timeout: 5000, message: 'the form sent nothing' });
  assert.deepEqual(sent[0].params, { preset: '720p', video_codec: 'hevc', hls: true });
  // ... which the coordinator takes (the job is made, and left unrun without its input).
  const taken = await call(grid, grid.apiKey, '/v1/jobs', { method: 'POST', body: { app: 'video-transcode', params: sent[0].params } });
  assert.deepEqual(taken.params, sent[0].params);
  await call(grid, grid.apiKey, `/v1/jobs/${taken.id}/cancel`, { method: 'POST' });

  // Copy with a streaming ladder: said at once, refused on submit, the checkbox to change focused.
  const copyMessage = 'A streaming ladder encodes the video again at several sizes, which Copy does not: '
    + 'turn the streaming ladder off, or choose a video codec to encode with.';
  await codec.selectOption('copy');
  await waitFor(async () => (await note.textContent()) === copyMessage, { timeout: 5000, message: async () => `the note says: ${await note.textContent()}` });
  await submit.click();
  await saysAlert(copyMessage);
  assert.equal(await ladderBox.getAttribute('aria-invalid'), 'true');
  assert.equal(await ladderBox.evaluate((el) => el === document.activeElement), true, 'the streaming ladder is focused, to be turned off');
  await screenshot(page, 'new-job-video-stream-copy-refused');
  // As the coordinator would have refused it.
  const refused = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'video-transcode', params: { video_codec: 'copy', hls: true } },
  }).catch((e) => e);
  assert.equal(refused.status, 422, String(refused));
  assert.match(refused.body.error.message, /hls cannot apply/);
  // Outside MP4 too (MKV carries HEVC, but a streaming ladder is MP4 segments).
  await codec.selectOption('hevc');
  await page.getByLabel('Container').selectOption('mkv');
  await submit.click();
  await saysAlert('A streaming ladder is MP4 segments with HLS playlists and a DASH manifest, in one archive: leave the container at MP4, or turn the streaming ladder off.');
  const mkv = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'video-transcode', params: { video_codec: 'hevc', hls: true, container: 'mkv' } },
  }).catch((e) => e);
  assert.equal(mkv.status, 422, String(mkv));
  assert.equal(sent.length, 1, 'nothing refused was sent');
  // Turned off, the copy goes: nothing of the ladder is sent.
  await page.getByLabel('Container').selectOption('mp4');
  await codec.selectOption('copy');
  await ladderBox.uncheck();
  await waitFor(async () => !(await note.isVisible()), { timeout: 5000, message: 'the note stays once the ladder is off' });
  await submit.click();
  await waitFor(() => sent.length === 2, { timeout: 5000, message: 'the form sent nothing' });
  assert.deepEqual(sent[1].params, { video_codec: 'copy' });
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('the job page shows the output\'s codec, container, audio tracks and subtitles as text', async () => {
  const page = await browser.context.newPage();
  await signIn(page, grid, grid.apiKey);
  const drawn = await page.evaluate(async () => {
    const { videoSummary } = await import('/ui/video-facts.js');
    const sneaky = '<img src=x onerror="window.injected=1">';
    const job = {
      output: null,
      facts: {
        codec: 'h264', width: 640, height: 360, fps: 25, duration: 4, audio_streams: 2, audio_duration: 4,
        audio: [{ position: 0, language: 'eng' }, { position: 1, language: null }],
        subtitles: [{ position: 0, language: 'fra', codec: 'subrip' }],
        output: {
          width: 640, height: 360, codec: 'hevc', video_copy: true, container: 'mkv', audio: true, audio_codec: 'copy',
          audio_tracks: [{ source: 1, language: null, duration: 4, offset: 0.5 }, { source: 0, language: sneaky, duration: null, offset: 0 }],
          subtitles: [{ source: 0, language: 'fra', codec: sneaky }],
        },
      },
    };
    const el = videoSummary(job);
    document.body.append(el);
    const text = el.textContent.replace(/\s+/g, ' ');
    const elements = [...el.querySelectorAll('*')].map((e) => e.tagName.toLowerCase());
    // A job recorded before these facts: none of their rows.
    const old = videoSummary({ output: null, facts: { codec: 'h264', width: 640, height: 360, output: { width: 640, height: 360, codec: 'h264', audio: true } } });
    return { text, elements, injected: window.injected || null, old: old.textContent };
  });
  assert.equal(drawn.injected, null);
  assert.ok(!drawn.elements.includes('img'), `no element from the facts: ${drawn.elements}`);
  assert.match(drawn.text, /Audio ?2 audio streams, 4\.0 s \(eng, no tag\)/);
  assert.match(drawn.text, /Subtitles ?1 track \(fra\)/);
  assert.match(drawn.text, /Output ?Video ?H\.265 \(HEVC\), copied as it is, 640×360, with audio/);
  assert.match(drawn.text, /Container ?Matroska \(MKV\)/);
  assert.ok(drawn.text.includes('Audio2 tracks, copied as they are'), drawn.text);
  assert.ok(drawn.text.includes('no language tag · source track 2 · 4.0 s · starts at 0.500 s'), drawn.text);
  assert.ok(drawn.text.includes('<img src=x onerror="window.injected=1"> · source track 1'), drawn.text);
  assert.ok(drawn.text.includes('Subtitles1 trackfra · source track 1 · <img src=x onerror="window.injected=1">'), drawn.text);
  assert.doesNotMatch(drawn.old, /Container|Subtitles|copied/);
  assert.match(drawn.old, /VideoH\.264, 640×360, with audio/);
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('a quality target from the new-job form: only its fields are sent, and the job page shows each chunk\'s quality', async () => {
  // Noise, so that the quality moves with the rate factor as a real picture's does.
  const clip = path.join(grid.dir, 'noisy.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25,noise=alls=25:allf=t',
    '-t', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', clip]);
  const page = await videoForm(clip);
  const created = [];
  page.on('request', (r) => { if (isCreate(r)) created.push(r); });
  const submit = page.getByRole('button', { name: 'Create and run' });
  const alert = page.locator('form [role="alert"]');
  const saysAlert = async (text) => waitFor(async () => (await alert.textContent({ timeout: 1000 })) === text, {
    timeout: 5000, message: async () => `the alert says: ${await alert.textContent().catch(() => '(none)')}, not ${text}`,
  });
  await page.getByLabel('Resolution').selectOption('source');
  await page.getByLabel('Encoder speed (slower is smaller)').selectOption('ultrafast');
  await page.getByLabel('Seconds per chunk').fill('1');
  // A rate factor typed first is not sent once a target is chosen.
  const crf = page.locator('input[name="crf"]');
  await crf.fill('20');
  const quality = page.getByRole('group', { name: 'Quality', exact: true });
  assert.equal(await quality.getByLabel('Rate factor (CRF)').isChecked(), true, 'a rate factor, as before, unless chosen otherwise');
  await quality.getByLabel('Quality target (PSNR or SSIM)').check();
  assert.equal(await crf.isVisible(), false, 'the rate factor is hidden with a target');
  const metric = quality.getByLabel('Quality metric');
  const value = page.locator('input[name="target_value"]');
  const label = page.locator('label[for="' + await value.getAttribute('id') + '"]');
  assert.deepEqual(await metric.locator('option').evaluateAll((os) => os.map((o) => [o.value, o.textContent])), [['psnr', 'PSNR'], ['ssim', 'SSIM']]);
  assert.equal(await label.textContent(), 'Target PSNR (25–55 dB, higher is better)');
  assert.deepEqual([await value.getAttribute('min'), await value.getAttribute('max')], ['25', '55']);
  assert.equal(await page.locator(`#${await value.getAttribute('aria-describedby')}`).textContent(),
    'Each chunk searches its rate factor, up to 4 encodes; charged as 4 encodes.');
  await metric.selectOption('ssim');
  assert.equal(await label.textContent(), 'Target SSIM (0.8–0.995, higher is better)');
  assert.deepEqual([await value.getAttribute('min'), await value.getAttribute('max')], ['0.8', '0.995']);
  // Outside the coordinator's ranges, or missing: refused on the page, the field to change focused.
  await value.fill('0.999');
  await submit.click();
  await saysAlert('An SSIM target must be from 0.8 to 0.995.');
  assert.equal(await value.getAttribute('aria-invalid'), 'true');
  assert.equal(await value.evaluate((el) => el === document.activeElement), true);
  await metric.selectOption('psnr');
  await value.fill('56');
  await submit.click();
  await saysAlert('A PSNR target must be from 25 to 55 dB.');
  await value.fill('');
  await submit.click();
  await saysAlert('Write the PSNR target, from 25 to 55 dB, or choose a rate factor instead.');
  assert.equal(created.length, 0, 'nothing refused was sent');
  await value.fill('40');
  assert.deepEqual(await unlabelledControls(page), []);
  await page.setViewportSize({ width: 390, height: 844 });
  await assertNoSidewaysScroll(page, 'the new-job form with a quality target at 390 px');
  await screenshot(page, 'new-job-video-target-phone');
  await page.setViewportSize({ width: 1366, height: 900 });
  await screenshot(page, 'new-job-video-target');

  const request = page.waitForRequest(isCreate);
  await submit.click();
  const body = (await request).postDataJSON();
  assert.deepEqual(body.params, { preset: 'source', x264_preset: 'ultrafast', target_quality: { metric: 'psnr', value: 40 } });
  assert.equal(body.chunk_seconds, 1);
  const jobId = await waitForJobPage(page);
  assert.equal(await waitForFinalState(page, grid, jobId, 300_000), 'completed', grid.logs());
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.deepEqual(job.params, body.params);
  const q = job.facts.quality;
  assert.ok(q && q.chunks.length >= 2, JSON.stringify(job.facts));
  assert.ok(q.chunks.every((c) => Number.isInteger(c.crf) && Number.isFinite(c.value)), JSON.stringify(q));
  // What the page says, worked out here from the facts.
  const values = q.chunks.map((c) => c.value);
  const expected = `PSNR target 40 dB: ${q.within} of ${q.chunks.length} chunks within 0.5 dB, `
    + `from ${Math.min(...values).toFixed(2)} to ${Math.max(...values).toFixed(2)} dB, as the devices measured them.`;
  const summary = page.locator('.video-facts .quality-summary');
  await waitFor(async () => (await summary.textContent({ timeout: 1000 })) === expected, {
    timeout: 10_000, message: async () => `the page says ${await summary.textContent().catch(() => '(nothing)')}, not ${expected}`,
  });
  const table = page.locator('.video-facts .quality-chunks table');
  assert.deepEqual(await table.locator('thead th').allTextContents(), ['Chunk', 'Rate factor', 'PSNR']);
  const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.deepEqual(rows, q.chunks.map((c) => [String(c.chunk + 1), String(c.crf), `${c.value.toFixed(2)} dB`]));
  await screenshot(page, 'job-video-target');
  await page.setViewportSize({ width: 390, height: 844 });
  await assertNoSidewaysScroll(page, 'the job page with quality facts at 390 px');
  await screenshot(page, 'job-video-target-phone');

  // A rate factor with a target is refused by the coordinator, saying why ...
  const refused = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'video-transcode', params: { crf: 20, target_quality: { metric: 'psnr', value: 40 } } },
  }).catch((e) => e);
  assert.equal(refused.status, 422, String(refused));
  assert.equal(refused.body.error.code, 'invalid_params');
  assert.match(refused.body.error.message, /target_quality picks each chunk's rate factor: give it without crf or bitrate/);
  // ... which the form never sends (above: the crf typed was left out); were it sent, the form
  // would show the coordinator's own words: its request, given a crf on the way, answered by the
  // coordinator.
  const again = await videoForm(clip);
  await again.route((url) => url.pathname === '/v1/jobs', (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const sent = route.request().postDataJSON();
    return route.continue({ postData: JSON.stringify({ ...sent, params: { ...sent.params, crf: 20 } }) });
  });
  await again.getByLabel('Quality target (PSNR or SSIM)').check();
  await again.locator('input[name="target_value"]').fill('40');
  await again.getByRole('button', { name: 'Create and run' }).click();
  const shownAlert = again.locator('form [role="alert"]');
  await shownAlert.waitFor();
  assert.equal(await shownAlert.textContent(), refused.body.error.message);
  await again.close();
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('the job page\'s quality table: renditions, unread reports, SSIM, as text, hundreds of chunks in a box that scrolls', async () => {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page, grid, grid.apiKey);
  const drawn = await page.evaluate(async () => {
    const { videoSummary } = await import('/ui/video-facts.js');
    const sneaky = '<img src=x onerror="window.injected=1">';
    const base = { codec: 'h264', width: 640, height: 360, output: { width: 640, height: 360, codec: 'h264', audio: false } };
    const draw = (quality, extra = {}) => {
      const el = videoSummary({ output: null, facts: { ...base, ...extra, quality } });
      document.querySelector('main').append(el);
      const box = el.querySelector('.quality-chunks');
      return {
        summary: el.querySelector('.quality-summary').textContent,
        head: box ? [...box.querySelectorAll('thead th')].map((th) => th.textContent) : null,
        rows: box ? [...box.querySelectorAll('tbody tr')].slice(0, 4).map((tr) => [...tr.cells].map((td) => td.textContent)) : null,
        count: box ? box.querySelectorAll('tbody tr').length : 0,
        box: box && { scrollHeight: box.scrollHeight, clientHeight: box.clientHeight, focusable: box.tabIndex === 0, label: box.getAttribute('aria-label') },
        images: el.querySelectorAll('img').length,
      };
    };
    const ladder = draw({
      metric: 'ssim', target: 0.97, tolerance_db: 0.5, within: 2,
      chunks: [
        { chunk: 0, rendition: 0, crf: 30, value: 0.97123 },
        { chunk: 0, rendition: 1, crf: 28, value: 0.96523 },
        { chunk: 1, rendition: 0, crf: null, value: null },
        { chunk: 1, rendition: 1, crf: 27, value: 0.9688 },
      ],
    }, { hls: { renditions: [{ width: 640, height: 360 }, { width: 426, height: 240 }], segment_seconds: 6 } });
    const long = draw({
      metric: 'psnr', target: 40, tolerance_db: 0.5, within: 300,
      chunks: Array.from({ length: 300 }, (_, i) => ({ chunk: i, rendition: 0, crf: 20 + (i % 7), value: 39.6 + (i % 5) / 10 })),
    });
    const odd = draw({ metric: sneaky, target: 3, tolerance_db: 0.5, within: 0, chunks: [{ chunk: 0, rendition: 0, crf: 22, value: 2.5 }] });
    return { ladder, long, odd, injected: window.injected || null, scroll: document.documentElement.scrollWidth, width: window.innerWidth };
  });
  assert.equal(drawn.ladder.summary, 'SSIM target 0.97: 2 of 4 chunk encodes within 0.5 dB (SSIM in decibels), from 0.9652 to 0.9712, '
    + 'as the devices measured them (the report of 1 chunk could not be read).');
  assert.deepEqual(drawn.ladder.head, ['Chunk', 'Rendition', 'Rate factor', 'SSIM']);
  assert.deepEqual(drawn.ladder.rows, [
    ['1', '1 (640×360)', '30', '0.9712'], ['1', '2 (426×240)', '28', '0.9652'], ['2', '1 (640×360)', 'not read', 'not read'], ['2', '2 (426×240)', '27', '0.9688'],
  ]);
  assert.equal(drawn.long.summary, 'PSNR target 40 dB: 300 of 300 chunks within 0.5 dB, from 39.60 to 40.00 dB, as the devices measured them.');
  assert.deepEqual(drawn.long.head, ['Chunk', 'Rate factor', 'PSNR']);
  assert.deepEqual(drawn.long.rows[1], ['2', '21', '39.70 dB']);
  assert.equal(drawn.long.count, 300);
  assert.ok(drawn.long.box.scrollHeight > drawn.long.box.clientHeight && drawn.long.box.clientHeight <= 18 * 16 + 2, JSON.stringify(drawn.long.box));
  assert.equal(drawn.long.box.focusable, true, 'the box scrolls by keyboard');
  assert.equal(drawn.long.box.label, 'PSNR of each chunk');
  // A metric the page does not know is shown as the text it is.
  assert.ok(drawn.odd.summary.startsWith('<img src=x onerror="window.injected=1"> target 3: 0 of 1 chunk within 0.5 dB, from 2.500 to 2.500, as'), drawn.odd.summary);
  assert.equal(drawn.injected, null);
  assert.equal(drawn.odd.images + drawn.ladder.images, 0);
  assert.ok(drawn.scroll <= drawn.width, `no sideways scrolling at 390 px: ${drawn.scroll}`);
  await screenshot(page, 'job-video-quality-table-phone');
  await page.close();
  assert.deepEqual(browser.errors, []);
});

// Needs a coordinator that knows video_codec, container, speed, audio_tracks (a build of
// apps/video/params.rs with them): an older one refuses the job it is sent.
test('AV1 in WebM from the new-job form: the parameters sent and recorded, and the job page says what the output is', async () => {
  // Two sound tracks (English, French) and English subtitles, in Matroska.
  const srt = path.join(grid.dir, 'subs.srt');
  fs.writeFileSync(srt, '1\n00:00:00,000 --> 00:00:01,500\nHello\n\n');
  const clip = path.join(grid.dir, 'languages.mkv');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-f', 'lavfi', '-i', 'sine=frequency=660:sample_rate=48000', '-i', srt,
    '-map', '0:v', '-map', '1:a', '-map', '2:a', '-map', '3:s', '-t', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-g', '25', '-c:a', 'aac', '-c:s', 'srt', '-metadata:s:a:0', 'language=eng', '-metadata:s:a:1', 'language=fra',
    '-metadata:s:s:0', 'language=eng', clip]);
  const page = await videoForm(clip);
  await page.getByLabel('Video codec').selectOption('av1');
  await page.getByLabel('Container').selectOption('webm');
  // The speed choices are SVT-AV1's.
  const speed = page.getByLabel('Encoder speed (slower is smaller)');
  assert.deepEqual(await speed.locator('option').evaluateAll((os) => os.map((o) => o.value)),
    ['', ...Array.from({ length: 14 }, (_, i) => String(i))]);
  assert.equal(await speed.locator('option').first().textContent(), 'Default (8)');
  await speed.selectOption('12');
  await page.getByLabel('Audio tracks').selectOption('languages');
  await page.getByLabel('Audio languages').fill('fra');
  const request = page.waitForRequest(isCreate);
  await page.getByRole('button', { name: 'Create and run' }).click();
  const { params } = (await request).postDataJSON();
  assert.equal(params.video_codec, 'av1');
  assert.equal(params.container, 'webm');
  assert.equal('x264_preset' in params, false, JSON.stringify(params));
  assert.deepEqual(params, { preset: '720p', video_codec: 'av1', container: 'webm', speed: '12', audio_tracks: ['fra'] });

  // The coordinator takes them as sent; once split, the job records what the output will be.
  const jobId = await waitForJobPage(page);
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.deepEqual(job.params, params);
  const split = await waitFor(async () => {
    const j = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
    if (j.state === 'failed') throw new Error(`job failed: ${j.error}`);
    return j.facts && j.facts.output && j;
  }, { timeout: 120_000, interval: 500, message: () => `the job was not split\n${grid.logs()}` });
  const out = split.facts.output;
  assert.equal(out.codec, 'av1');
  assert.equal(out.container, 'webm');
  assert.equal(out.video_copy, false);
  assert.equal(out.audio_codec, 'opus');
  assert.deepEqual(out.audio_tracks.map((t) => [t.source, t.language]), [[1, 'fra']]);
  assert.deepEqual(out.subtitles.map((t) => [t.source, t.language]), [[0, 'eng']]);
  const summary = page.locator('.video-facts');
  await waitFor(async () => /WebM/.test(await summary.textContent({ timeout: 1000 })), {
    timeout: 30_000, message: async () => `the page says: ${await page.locator('main').textContent()}`,
  });
  const text = (await summary.textContent()).replace(/\s+/g, ' ');
  assert.match(text, /Output ?Video ?AV1, 320×240, with audio/);
  assert.match(text, /Container ?WebM/);
  assert.match(text, /Audio ?1 track, Opus ?fra · source track 2/);
  assert.match(text, /Subtitles ?1 track ?eng · source track 1 · SubRip \(SRT\)/);
  await screenshot(page, 'job-video-av1-webm');
  // Not run to its end here: cancelled, so the worker is free.
  await call(grid, grid.apiKey, `/v1/jobs/${jobId}/cancel`, { method: 'POST' }).catch(() => {});
  await page.close();
  assert.deepEqual(browser.errors, []);
});
