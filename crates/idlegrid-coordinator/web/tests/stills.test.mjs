// A video's stills (thumbnails and a poster) in the dashboard.
// The new-job form sends `thumbnails` and `poster` only within the coordinator's ranges (and a
// poster within the chosen video), saying what to change otherwise, and offers neither with
// Copy. A job made from it (a 4 s 320x240 clip, chunks of 2 s, a thumbnail every second 96 px
// wide, a poster at 2 s) completes on native workers, and its page: offers the output as an
// archive (.tar), plays the video inside it (not the archive), shows the poster (in the
// player and as a picture with alt text), and a strip of as many thumbnails as the job's facts
// count, each a tile of the sprite sheet, that moves the player to its time when clicked; at
// 1366 and 390 px, without sideways scrolling. The thumbnails' index is data: a hostile one
// makes no element and no request out of the index's folder, and only its well-formed cues
// become tiles.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { assertNoSidewaysScroll, call, closeGrid, openGrid, screenshot, signIn, unlabelledControls, waitFor, waitForFinalState, waitForJobPage } from './helpers.mjs';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 1, slots: 2 })));
after(() => closeGrid({ grid, browser }));

const isCreate = (r) => r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs';

/** The job made from the form in the first test, for those after it. */
let jobId = null;

test('the new-job form sends thumbnails and a poster within their ranges; the job completes with them', async () => {
  const clip = path.join(grid.dir, 'clip.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '4', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-pix_fmt', 'yuv420p', '-g', '25', '-c:a', 'aac', '-shortest', clip]);
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/new`);
  await page.getByLabel('App', { exact: true }).selectOption('video-transcode');
  await page.getByLabel('Input file').setInputFiles(clip);
  const every = page.getByLabel('Thumbnails every (seconds)');
  const width = page.getByLabel('Thumbnail width (pixels)');
  const poster = page.getByLabel('Poster at (seconds)');
  // Copy encodes nothing, so it makes no stills: the fields are off.
  await page.getByLabel('Video codec').selectOption('copy');
  for (const control of [every, width, poster]) assert.equal(await control.isDisabled(), true);
  await page.getByLabel('Video codec').selectOption('h264');
  for (const control of [every, width, poster]) assert.equal(await control.isDisabled(), false);
  await page.getByLabel('Resolution').selectOption('source');
  await page.getByLabel('Encoder speed (slower is smaller)').selectOption('ultrafast');
  await page.getByLabel('Seconds per chunk').fill('2');
  const submit = page.getByRole('button', { name: 'Create and run' });
  const alert = page.locator('form [role="alert"]');
  const created = [];
  page.on('request', (r) => { if (isCreate(r)) created.push(r); });
  /** Submits and waits for the form to refuse with `text`, the control `invalid` marked and focused. */
  const refuses = async (text, invalid) => {
    await submit.click();
    await waitFor(async () => (await alert.textContent({ timeout: 1000 })) === text, {
      timeout: 5000, message: async () => `the alert says: ${await alert.textContent().catch(() => '(none)')}, not ${text}`,
    });
    assert.equal(await invalid.getAttribute('aria-invalid'), 'true', text);
    assert.equal(await invalid.evaluate((el) => el === document.activeElement), true, `${text}: the field to change is focused`);
  };

  await every.fill('0.5');
  await refuses('Thumbnails can be taken every 1 to 3600 seconds.', every);
  await every.fill('');
  await width.fill('96');
  await refuses('Write how often to take a thumbnail, or leave their width empty.', every);
  await every.fill('1');
  await width.fill('97');
  await refuses('The thumbnails’ width must be an even number of pixels from 32 to 640.', width);
  await width.fill('700');
  await refuses('The thumbnails’ width must be an even number of pixels from 32 to 640.', width);
  await width.fill('96');
  await poster.fill('-1');
  await refuses('The poster’s time is in seconds from the start: 0 or more.', poster);
  // The clip is 4 s long, as the browser reads it once chosen.
  await poster.fill('9');
  await refuses('The poster’s time is past the end of the video (4.0 s).', poster);
  assert.equal(created.length, 0, 'nothing refused was sent');
  await poster.fill('2');
  assert.deepEqual(await unlabelledControls(page), []);
  await page.setViewportSize({ width: 390, height: 844 });
  await assertNoSidewaysScroll(page, 'the new-job form with stills at 390 px');
  await screenshot(page, 'new-job-video-stills-phone');
  await page.setViewportSize({ width: 1366, height: 900 });

  const request = page.waitForRequest(isCreate);
  await submit.click();
  const body = (await request).postDataJSON();
  assert.deepEqual(body.params, { preset: 'source', x264_preset: 'ultrafast', thumbnails: { every: 1, width: 96 }, poster: 2 });
  jobId = await waitForJobPage(page);
  assert.equal(await waitForFinalState(page, grid, jobId, 300_000), 'completed', grid.logs());
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.deepEqual(job.params, body.params);
  assert.equal(job.facts.output.archive, true, JSON.stringify(job.facts));
  assert.deepEqual(job.facts.stills.thumbnails, { every: 1, width: 96, height: 72, count: 4 });
  assert.deepEqual(job.facts.stills.poster, { frame: 50, width: 320, height: 240 });
  assert.deepEqual(browser.errors, []);
});

test('the job page plays the archive\'s video, shows its poster and a thumbnail strip that seeks the player', async () => {
  assert.ok(jobId, 'the first test made the job');
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1366, height: 900 });
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/${jobId}`);

  // The download is the archive, and says so.
  const download = page.locator('a#download');
  await download.waitFor({ timeout: 20_000 });
  assert.equal(await download.textContent(), 'Download the archive (.tar)');
  assert.equal(await download.getAttribute('download'), `job-${jobId}.tar`);
  assert.match(await download.getAttribute('href'), /^\/v1\/links\/[^/]+\/output$/);
  const token = (await download.getAttribute('href')).split('/')[3];
  const files = `/v1/links/${token}/hls`;

  // The player plays the video inside the archive, with the poster shown before it plays.
  const video = page.locator('video#player');
  assert.equal(await video.getAttribute('src'), `${files}/video.mp4`);
  assert.equal(await video.getAttribute('poster'), `${files}/poster.jpg`);
  await waitFor(() => video.evaluate((v) => v.readyState >= 1), {
    timeout: 20_000, message: async () => `video: ${JSON.stringify(await video.evaluate((v) => ({ readyState: v.readyState, error: v.error && v.error.message })))}`,
  });
  const loaded = await video.evaluate((v) => ({ duration: v.duration, w: v.videoWidth, h: v.videoHeight }));
  assert.ok(Math.abs(loaded.duration - 4) < 0.2, `duration ${loaded.duration}`);
  assert.deepEqual([loaded.w, loaded.h], [320, 240]);

  // The poster as a picture, loaded, with words for who cannot see it.
  const picture = page.locator('img#poster');
  await waitFor(() => picture.evaluate((img) => img.complete && img.naturalWidth > 0), { timeout: 10_000, message: 'the poster does not load' });
  assert.deepEqual(await picture.evaluate((img) => [img.naturalWidth, img.naturalHeight]), [320, 240]);
  assert.equal(await picture.getAttribute('alt'), `Poster of job ${jobId}: the video’s frame at 0:02`);
  assert.equal(await picture.getAttribute('src'), `${files}/poster.jpg`);

  // A tile per thumbnail the facts count, each its part of the sprite sheet, with its time.
  const strip = page.getByRole('list', { name: 'Thumbnails' });
  const tiles = strip.locator('button.thumbnail');
  await waitFor(async () => (await tiles.count()) === job.facts.stills.thumbnails.count, {
    timeout: 10_000, message: async () => `${await tiles.count()} tiles; the page says ${await page.locator('.thumbnails-status').textContent()}`,
  });
  assert.equal(await page.locator('.thumbnails-status').textContent(), '4 thumbnails, one every 1 s. Choose one to go to its time in the video.');
  assert.deepEqual(await tiles.allTextContents(), ['Go to 0:00', 'Go to 0:01', 'Go to 0:02', 'Go to 0:03']);
  // Each sheet is asked for as its tiles come into view: at once, for these four.
  const pictures = tiles.locator('.thumbnail-picture');
  await waitFor(() => pictures.evaluateAll((els) => els.every((el) => el.style.backgroundImage)), { timeout: 5000, message: 'the tiles have no sprite sheet' });
  const drawn = await pictures.evaluateAll((els) => els.map((el) => {
    const style = getComputedStyle(el);
    return { image: style.backgroundImage, position: style.backgroundPosition, size: `${style.width} ${style.height}` };
  }));
  const sprite = new URL(`${files}/thumbnails/sprite-001.jpg`, grid.url).href;
  assert.deepEqual(drawn, [0, 1, 2, 3].map((k) => ({ image: `url("${sprite}")`, position: `${-96 * k}px 0px`, size: '96px 72px' })));
  const sheet = await fetch(sprite);
  assert.equal(sheet.status, 200);
  assert.equal(sheet.headers.get('content-type'), 'image/jpeg');

  // The facts say what the stills are.
  const facts = (await page.locator('.video-facts').textContent()).replace(/\s+/g, ' ');
  assert.ok(facts.includes('ContainerMP4, in a tar with its stills'), facts);
  assert.ok(facts.includes('Thumbnails4 thumbnails in 1 sprite sheet, one every 1 s, 96×72'), facts);
  assert.ok(facts.includes('Poster320×240, the frame at 2 s, frame 51 of the output'), facts);

  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth), false, 'the job page at 1366 px');
  await screenshot(page, 'job-video-stills');
  await page.setViewportSize({ width: 390, height: 844 });
  await assertNoSidewaysScroll(page, 'the job page with stills at 390 px');
  await screenshot(page, 'job-video-stills-phone');
  await page.setViewportSize({ width: 1366, height: 900 });

  // The third thumbnail moves the player to 2 s, and is marked as the player's place.
  // (Browsers seek only in what they can fetch again from any byte: the video's link must
  // answer Range requests.)
  await tiles.nth(2).click();
  await waitFor(() => video.evaluate((v) => Math.abs(v.currentTime - 2) < 0.05), {
    timeout: 5000,
    message: async () => `the player did not go to 2 s: ${JSON.stringify(await video.evaluate((v) => ({
      currentTime: v.currentTime, seekable: [...Array(v.seekable.length).keys()].map((i) => [v.seekable.start(i), v.seekable.end(i)]),
    })))}; the video's link answers a Range request with ${await fetch(new URL(`${files}/video.mp4`, grid.url), { headers: { Range: 'bytes=0-1' } })
      .then((r) => `${r.status}, Accept-Ranges: ${r.headers.get('accept-ranges')}`)}`,
  });
  assert.equal(await tiles.nth(2).getAttribute('aria-current'), 'time');
  assert.equal(await page.locator('button.thumbnail[aria-current]').count(), 1);
  // It plays on from there.
  await video.evaluate((v) => { v.muted = true; return v.play(); });
  await waitFor(() => video.evaluate((v) => v.currentTime > 2.3), {
    timeout: 10_000, message: async () => `currentTime ${await video.evaluate((v) => v.currentTime)}`,
  });
  await video.evaluate((v) => v.pause());

  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('the thumbnails\' index is read as data: only well-formed cues become tiles, nothing leaves its folder', async () => {
  assert.ok(jobId, 'the first test made the job');
  const page = await browser.context.newPage();
  await signIn(page, grid, grid.apiKey);
  const hostile = [
    'WEBVTT',
    '',
    '00:00:00.000 --> 00:00:01.000',
    'sprite-001.jpg#xywh=0,0,96,72',
    '',
    'cue-2',
    '00:00:01.000 --> 00:00:02.000',
    '<img src=x onerror="window.injected=1">#xywh=0,0,96,72',
    '',
    '00:00:02.000 --> 00:00:03.000',
    '../../output#xywh=0,0,96,72',
    '',
    '00:00:03.000 --> 00:00:04.000',
    '..#xywh=0,0,96,72',
    '',
    '00:00:04.000 --> 00:00:05.000',
    'a.jpg#xywh=0,0,96,72") ; background: url("https://example.com/x.jpg',
    '',
    '00:00:05.000 --> 00:00:06.000 line:0',
    'sprite-001.jpg#xywh=96,0,96,72',
    '',
    '00:00:06.000 --> 00:00:07.000',
    'sprite-001.jpg#xywh=0,0,0,72',
    '',
    '<b>00:00:07.000 --> 00:00:08.000</b>',
    'sprite-001.jpg#xywh=0,0,96,72',
    '',
    '01:00:07.000 --> 01:00:08.500',
    'sprite_2.jpg#xywh=192,72,640,360',
    '',
  ].join('\r\n');
  const requested = [];
  page.on('request', (r) => requested.push(new URL(r.url())));
  await page.route((url) => url.pathname.endsWith('/thumbnails/thumbnails.vtt'),
    (route) => route.fulfill({ status: 200, contentType: 'text/vtt', body: hostile }));
  await page.goto(`${grid.url}/#/jobs/${jobId}`);
  const tiles = page.locator('button.thumbnail');
  await waitFor(async () => (await tiles.count()) === 2 && page.locator('.thumbnail-picture').evaluateAll((els) => els.every((el) => el.style.backgroundImage)), {
    timeout: 10_000, message: async () => `${await tiles.count()} tiles: ${await page.locator('.thumbnails-status').textContent().catch(() => '')}`,
  });
  assert.deepEqual(await tiles.allTextContents(), ['Go to 0:00', 'Go to 1:00:07']);
  const drawn = await page.evaluate(() => ({
    injected: window.injected || null,
    images: [...document.querySelectorAll('.output-body img')].map((img) => img.id),
    backgrounds: [...document.querySelectorAll('.thumbnail-picture')].map((el) => el.style.backgroundImage),
    sizes: [...document.querySelectorAll('.thumbnail-picture')].map((el) => [el.style.width, el.style.height, el.style.backgroundSize]),
  }));
  assert.equal(drawn.injected, null);
  assert.deepEqual(drawn.images, ['poster'], 'no element from the index');
  const folder = new URL(page.url()).origin;
  assert.ok(drawn.backgrounds[0].startsWith(`url("${folder}/v1/links/`) && drawn.backgrounds[0].endsWith('/hls/thumbnails/sprite-001.jpg")'), drawn.backgrounds[0]);
  // The wide tile is shown smaller, at most 160 px wide; its sheet with it.
  assert.deepEqual(drawn.sizes[1], ['160px', '90px', '208px 108px']);
  // Both tiles' sheets are asked for (one is missing: a 404), and nothing else of the index's.
  await waitFor(() => ['/sprite-001.jpg', '/sprite_2.jpg'].every((name) => requested.some((u) => u.pathname.endsWith(`/hls/thumbnails${name}`))), {
    timeout: 5000, message: () => `the sheets asked for: ${requested.filter((u) => u.pathname.includes('/thumbnails/')).map((u) => u.pathname)}`,
  });
  const elsewhere = requested.filter((u) => u.origin !== folder || (u.pathname.startsWith('/v1/links/') && !/\/hls\/(thumbnails\/[A-Za-z0-9._-]+|video\.mp4|poster\.jpg)$/.test(u.pathname)));
  assert.deepEqual(elsewhere.map(String), [], 'no request out of the index\'s folder');
  await page.close();
  assert.deepEqual(browser.errors, []);
});
