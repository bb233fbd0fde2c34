// Subtitles of a streaming output, played through dash.js: a 4 s clip with an SRT track of three
// cues (English) goes through a one-rendition streaming job on a native worker; its DASH
// manifest side-loads them as WebVTT (an AdaptationSet of mimeType text/vtt whose BaseURL names
// subtitles-0.vtt). On the job page of a browser without an HLS player of its own, dash.js plays
// the video and gives the <video> element the subtitle track: offered but off at first (as the
// HLS master playlist has them, DEFAULT=NO), and once chosen as the captions menu chooses it,
// showing the SRT's cue that spans the time played, at the SRT's times.
// Chromium's own HLS player (the page's other path) gives the <video> element no text track
// for the master playlist's SUBTITLES group: nothing is asserted of it here.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { call, closeGrid, openGrid, screenshot, sha256, signIn, videoWhen, waitFor, withoutNativeHls } from './helpers.mjs';
import { ensureRuntimes } from './static-server.mjs';

let grid;
let browser;

before(async () => {
  // In place before the coordinator starts, which serves them only if they are there then.
  ensureRuntimes();
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2 }));
});
after(() => closeGrid({ grid, browser }));

/** The SRT's cues: [start, end] in seconds and text. */
const CUES = [
  { start: 0.2, end: 1.2, text: 'First words' },
  { start: 1.3, end: 2.7, text: 'Second words' },
  { start: 2.8, end: 3.8, text: 'Third words' },
];

const srtTime = (s) => {
  const ms = Math.round(s * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)},${pad(ms % 1000, 3)}`;
};

/** A completed streaming job (one 320×240 rendition, 2 s chunks) of a 4 s clip with sound and
 * the CUES as an English SRT track, in Matroska. */
async function subtitledJob() {
  const srt = path.join(grid.dir, 'cues.srt');
  fs.writeFileSync(srt, CUES.map((c, i) => `${i + 1}\n${srtTime(c.start)} --> ${srtTime(c.end)}\n${c.text}\n`).join('\n'));
  const clip = path.join(grid.dir, 'subtitled.mkv');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-i', srt, '-map', '0:v', '-map', '1:a', '-map', '2:s', '-t', '4',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', '-c:a', 'aac', '-c:s', 'srt',
    '-metadata:s:s:0', 'language=eng', clip]);
  const created = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST',
    body: { app: 'video-transcode', params: { preset: 'source', x264_preset: 'ultrafast', hls: true, ladder: ['360p'] }, chunk_seconds: 2 },
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
  }, { timeout: 120_000, interval: 300, message: () => `the subtitled job did not finish\n${grid.logs()}` });
  assert.equal(job.state, 'completed', `the subtitled job: ${job.error}\n${grid.logs()}`);
  return job;
}

/** The <video> element's text tracks, each with its cues (all, and those active now). */
const textTracks = (video) => video.evaluate((v) => ({
  currentTime: v.currentTime,
  tracks: [...v.textTracks].map((t) => ({
    kind: t.kind, label: t.label, language: t.language, mode: t.mode,
    cues: t.cues && [...t.cues].map((c) => ({ start: c.startTime, end: c.endTime, text: c.text })),
    active: t.activeCues && [...t.activeCues].map((c) => c.text),
  })),
}));

test('dash.js plays a streaming output with its side-loaded WebVTT subtitles: offered off, shown when chosen, at the SRT\'s times', async () => {
  const job = await subtitledJob();
  assert.deepEqual(job.facts.output.subtitles.map((s) => s.language), ['eng'], JSON.stringify(job.facts.output));
  assert.deepEqual(job.facts.hls.renditions, [{ width: 320, height: 240 }]);

  const page = await browser.context.newPage();
  await withoutNativeHls(page);
  const fetched = [];
  page.on('response', (r) => { if (new URL(r.url()).pathname.includes('/hls/')) fetched.push({ name: new URL(r.url()).pathname.split('/').pop(), status: r.status() }); });
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  const video = page.locator('video#player');
  await video.waitFor();
  assert.equal(await video.getAttribute('data-playback'), 'dash');

  // The manifest side-loads the subtitles: a text/vtt set in English naming the WebVTT file,
  // which holds the SRT's cues.
  const dashHref = await page.locator('#dash-link').getAttribute('href');
  const mpd = await (await fetch(new URL(dashHref, grid.url))).text();
  const textSet = mpd.match(/<AdaptationSet\b[^>]*mimeType="text\/vtt"[^>]*>[\s\S]*?<\/AdaptationSet>/);
  assert.ok(textSet, `a text/vtt adaptation set in\n${mpd}`);
  assert.match(textSet[0], /\blang="eng"/);
  assert.match(textSet[0], /<BaseURL>subtitles-0\.vtt<\/BaseURL>/);
  const vtt = await (await fetch(new URL(dashHref.replace(/manifest\.mpd$/, 'subtitles-0.vtt'), grid.url))).text();
  assert.match(vtt, /^WEBVTT/);
  for (const cue of CUES) assert.ok(vtt.includes(cue.text), vtt);

  // dash.js attaches its media source and the video plays.
  await videoWhen(video, { readyState: 1, blob: true }, ['loadedmetadata', 'durationchange', 'canplay']);
  await video.evaluate((v) => { v.muted = true; return v.play(); });
  await videoWhen(video, { readyState: 2, currentTime: 0.5, size: true }, ['timeupdate', 'playing', 'resize']);

  // The subtitle track is the <video> element's, in English (dash.js gives the manifest's
  // ISO 639-2 "eng" as BCP 47 "en"), with the SRT's cues at its times (the source's subtitle
  // stream is 21 ms late in the Matroska file as FFmpeg writes it: within 50 ms) — and not
  // shown until chosen.
  const loaded = await waitFor(async () => {
    const now = await textTracks(video);
    return now.tracks.length === 1 && now.tracks[0].cues && now.tracks[0].cues.length === CUES.length && now;
  }, { timeout: 15_000, message: async () => `the video's text tracks: ${JSON.stringify(await textTracks(video))}` });
  const [track] = loaded.tracks;
  assert.equal(track.language, 'en', JSON.stringify(track));
  assert.equal(track.mode, 'hidden', 'offered, not shown, until chosen (DEFAULT=NO in the HLS master playlist)');
  assert.deepEqual(track.cues.map((c) => c.text), CUES.map((c) => c.text));
  track.cues.forEach((c, i) => {
    assert.ok(Math.abs(c.start - CUES[i].start) < 0.05 && Math.abs(c.end - CUES[i].end) < 0.05, `cue ${i}: ${JSON.stringify(c)}, not ${JSON.stringify(CUES[i])}`);
  });
  const names = fetched.map((r) => r.name);
  assert.ok(names.includes('subtitles-0.vtt') && !names.includes('subtitles-0.m3u8') && !names.includes('master.m3u8'), JSON.stringify(fetched));
  assert.ok(fetched.every((r) => r.status === 200 || r.status === 206), JSON.stringify(fetched));

  // Chosen as the captions menu chooses a track (the others off, it showing): at each time
  // played, the cue spanning it is the one active.
  await video.evaluate((v) => {
    v.pause();
    for (const t of v.textTracks) t.mode = 'disabled';
    v.textTracks[0].mode = 'showing';
  });
  for (const [at, text] of [[1.5, 'Second words'], [0.7, 'First words'], [3.3, 'Third words']]) {
    await video.evaluate((v, t) => { v.currentTime = t; }, at);
    await waitFor(async () => {
      const now = await textTracks(video);
      return Math.abs(now.currentTime - at) < 0.05 && JSON.stringify(now.tracks[0].active) === JSON.stringify([text]);
    }, { timeout: 5000, message: async () => `at ${at} s, not "${text}": ${JSON.stringify(await textTracks(video))}` });
    if (at === 1.5) await screenshot(page, 'job-video-dash-subtitles');
  }
  // Turned off in the menu: no cue is active; chosen again, the cue comes back.
  await video.evaluate((v) => { v.textTracks[0].mode = 'disabled'; });
  assert.equal((await textTracks(video)).tracks[0].active, null);
  await video.evaluate((v) => { v.textTracks[0].mode = 'showing'; v.currentTime = 2; });
  await waitFor(async () => JSON.stringify((await textTracks(video)).tracks[0].active) === '["Second words"]', {
    timeout: 5000, message: async () => `chosen again: ${JSON.stringify(await textTracks(video))}`,
  });
  assert.equal(await page.locator(`section[aria-labelledby="output-${job.id}"] .alert`).count(), 0, 'no player error shown');

  // What the captions menu shows of the track. dash.js 5 names a text track by its adaptation
  // set's id (the <Label> element is not used for the <video> element's track), so the set
  // needs one, or the menu reads "null"; and by the set's Role (subtitle), or the track is
  // taken for captions (for people who cannot hear: sounds described), which an SRT track is not.
  const setId = textSet[0].match(/^<AdaptationSet\b[^>]*\bid="(\d+)"/);
  assert.ok(setId, `the text/vtt adaptation set has an id (dash.js's label of the track: now ${JSON.stringify(track.label)}):\n${textSet[0]}`);
  assert.equal(track.label, setId[1]);
  assert.equal(track.kind, 'subtitles', `a Role of subtitle in the text/vtt adaptation set:\n${textSet[0]}`);

  await page.close();
  assert.deepEqual(browser.errors, []);
});
