// Results of different runtimes are compared by hash only within their kind: a replicated
// video job on a native worker and two browser workers (ffmpeg.wasm's x264 gives other bytes
// than the native build) completes on the browsers' agreement, and no device is called wrong
// for having a runtime of another kind.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { call, closeGrid, launchBrowser, linkBrowserWorker, openGrid, sha256, waitFor } from './helpers.mjs';

let grid;
let browser;
let second;

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 1, slots: 1 }));
  second = await launchBrowser();
});
after(async () => {
  if (second) await second.close();
  await closeGrid({ grid, browser });
});

test('a replicated video job reaches its quorum within one kind of runtime', async () => {
  await linkBrowserWorker(browser.page, grid);
  await linkBrowserWorker(second.page, grid);
  const clip = path.join(grid.dir, 'clip.mkv');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '1', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
    '-g', '25', '-c:a', 'aac', '-shortest', clip]);
  const job = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST',
    body: {
      app: 'video-transcode', params: { preset: 'source', x264_preset: 'ultrafast' }, chunk_seconds: 1,
      preferences: { replication: { mode: 'fixed', replicas: 2, quorum: 2, max_replicas: 3 } },
    },
  });
  const bytes = fs.readFileSync(clip);
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/run`, { method: 'POST' });
  const done = await waitFor(async () => {
    const j = await call(grid, grid.apiKey, `/v1/jobs/${job.id}`);
    if (j.state === 'failed') throw new Error(`job failed: ${j.error}`);
    return j.state === 'completed' && j;
  }, { timeout: 300_000, interval: 500, message: () => `the replicated job did not complete\n${grid.logs()}` });
  const { devices } = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  const summary = devices.map((d) => `${d.name} (${d.capabilities.runtime}, benchmark ${d.capabilities.benchmark}): ${d.valid} valid, ${d.invalid} invalid`).join('; ');
  console.log(`${done.chunks.total} tasks, ${done.chunks.results} results: ${summary}`);
  assert.equal(devices.length, 3, summary);
  for (const d of devices) assert.equal(d.invalid, 0, `no device is called wrong: ${summary}`);
  // Only the two browsers can form a quorum of two of one kind: every task was accepted on theirs.
  const browsers = devices.filter((d) => d.capabilities.runtime === 'browser');
  assert.equal(browsers.length, 2);
  for (const d of browsers) assert.equal(d.valid, done.chunks.total, summary);
  assert.deepEqual([...browser.errors, ...second.errors], []);
});
