// 2. A python-map job from the page: input uploaded in several parts, run, completed, every
//    chunk done in the grid, the download link's bytes are the expected output.
// 3. A failing job (the script raises) shows its error in words.
// 10. An upload interrupted after its first part resumes without sending that part again.
// The jobs list updates live (SSE).
// 5. Cancel from the job page (last: its chunk keeps the one worker busy).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { call, closeGrid, openGrid, signIn, submitPythonJob, UPPER_SCRIPT, waitFor, waitForFinalState, waitForJobPage, screenshot } from './helpers.mjs';
import { shown as asText } from '../ui/text.js';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 1, slots: 2 })));
after(() => closeGrid({ grid, browser }));

function lines(n, tag) {
  return Array.from({ length: n }, (_, i) => `${tag} line ${i} of ${n}, mixed Case\n`).join('');
}

/** Fills the new-job form for a python-map job. */
async function fillPythonForm(page, { file, script = UPPER_SCRIPT, chunkLines = 10 }) {
  await page.getByLabel('App', { exact: true }).selectOption('python-map');
  await page.getByLabel('Input file').setInputFiles(file);
  await page.getByLabel('Task script (Python)').fill(script);
  await page.getByLabel('Lines per chunk').fill(String(chunkLines));
}

/** The bytes behind the page's download link (a signed link: fetched without Authorization). */
async function downloadBytes(page) {
  const link = page.locator('a#download');
  await link.waitFor({ timeout: 20_000 });
  const href = await link.getAttribute('href');
  if (href.startsWith('blob:')) {
    return Buffer.from(await page.evaluate(async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer())), href));
  }
  const response = await fetch(new URL(href, grid.url));
  assert.equal(response.status, 200, `download link ${href}: ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

test('python-map job from the page: parts, run, all chunks done, download is the expected output', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  const input = lines(40, 'alpha');
  const file = path.join(grid.dir, 'alpha.txt');
  fs.writeFileSync(file, input);
  await page.evaluate(() => localStorage.setItem('idlegrid.partSize', '400'));
  const parts = [];
  page.on('request', (r) => {
    const m = r.url().match(/\/input\/parts\/(\d+)$/);
    if (m && r.method() === 'PUT') parts.push(Number(m[1]));
  });
  await page.goto(`${grid.url}/#/jobs/new`);
  await fillPythonForm(page, { file, chunkLines: 10 });
  await page.getByRole('button', { name: 'Create and run' }).click();
  const jobId = await waitForJobPage(page);
  const expectedParts = Math.ceil(Buffer.byteLength(input) / 400);
  assert.ok(expectedParts >= 3);
  assert.deepEqual(parts, Array.from({ length: expectedParts }, (_, i) => i), 'each part sent once, in order');

  assert.equal(await waitForFinalState(page, grid, jobId), 'completed');
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.equal(job.chunks.total, 4);
  assert.equal(job.input.size, Buffer.byteLength(input));
  // The chunk grid: one square per chunk, every one done.
  await waitFor(async () => (await page.locator('.chunk-grid li[data-state="done"]').count()) === 4, {
    message: async () => `chunk grid: ${await page.locator('.chunk-grid').innerHTML()}`,
  });
  assert.equal(await page.locator('.chunk-grid li').count(), 4);
  assert.deepEqual(await page.locator('.chunk-grid li').evaluateAll((els) => els.map((e) => e.dataset.index)), ['0', '1', '2', '3']);
  assert.match(await page.locator('.chunk-summary').textContent(), /4 chunks: 4 done/);
  // What it cost, against its quote, as the API says.
  assert.ok(job.cost && job.cost.charged > 0, `the job has its cost: ${JSON.stringify(job.cost)}`);
  const credits = (m) => `${Math.floor(m / 1e6)}.${String(m % 1e6).padStart(6, '0')} credits`;
  await page.getByText(`${credits(job.cost.charged)} charged of a quote of ${credits(job.cost.quote)}`).waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('progress#' + await page.locator('.progress-row progress').getAttribute('id')).evaluate((p) => p.value), 1);
  await screenshot(page, 'job-python-map');
  const bytes = await downloadBytes(page);
  assert.equal(bytes.toString('utf8'), input.toUpperCase());
  assert.equal(await page.evaluate(() => localStorage.getItem('idlegrid.uploads')), '{}', 'the finished upload is forgotten');
  // Named after its file, on its page and in the list.
  assert.equal(job.name, 'alpha.txt');
  assert.equal(await page.locator('#page-title').textContent(), `Job ${jobId}: alpha.txt`);
  // Run again: a copy with the same input, run at once, on its own page.
  await page.getByRole('button', { name: 'Run again' }).click();
  await page.waitForURL((url) => url.hash.startsWith('#/jobs/') && url.hash !== `#/jobs/${jobId}`);
  const againId = Number(new URL(page.url()).hash.split('/').pop());
  await page.getByRole('heading', { name: `Job ${againId}: alpha.txt` }).waitFor();
  assert.equal(await waitForFinalState(page, grid, againId), 'completed');
  const again = await call(grid, grid.apiKey, `/v1/jobs/${againId}`);
  assert.equal(again.output.sha256, job.output.sha256, 'the same input gives the same output');
  await page.goto(`${grid.url}/#/jobs`);
  await page.locator(`a[href="#/jobs/${againId}"]`).waitFor();
  assert.equal(await page.locator('.job-name').first().textContent(), 'alpha.txt');
  assert.deepEqual(browser.errors, []);
});

test('parameters that are not a JSON object are refused before anything is sent', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  const file = path.join(grid.dir, 'params.txt');
  fs.writeFileSync(file, 'x\n');
  const posts = [];
  const listener = (r) => { if (r.method() === 'POST' && r.url().endsWith('/v1/jobs')) posts.push(r.url()); };
  page.on('request', listener);
  await page.goto(`${grid.url}/#/jobs/new`);
  await fillPythonForm(page, { file });
  const params = page.getByLabel('Parameters (JSON object)');
  for (const [value, words] of [['{"factor": 2', /not valid JSON/], ['[1, 2]', /must be a JSON object/]]) {
    await params.fill(value);
    await page.getByRole('button', { name: 'Create and run' }).click();
    const alert = page.locator('form [role="alert"]');
    await alert.waitFor();
    assert.match(await alert.textContent(), words);
    assert.equal(await params.getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.name), 'params', 'focus goes to the field to fix');
  }
  await params.fill('{"factor": 2}');
  await page.getByRole('button', { name: 'Create and run' }).click();
  const jobId = await waitForJobPage(page);
  page.off('request', listener);
  assert.equal(posts.length, 1, 'only the valid form was sent');
  assert.deepEqual((await call(grid, grid.apiKey, `/v1/jobs/${jobId}`)).params, { factor: 2 });
  assert.deepEqual(browser.errors, []);
});

test('a failing job shows its error in words', async () => {
  const { page } = browser;
  const job = await submitPythonJob(grid, {
    script: 'raise ValueError("the input is not what this script expects")\n',
    input: lines(5, 'bad'),
    chunkLines: 10,
    preferences: { max_attempts: 1 },
  });
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  assert.equal(await waitForFinalState(page, grid, job.id), 'failed');
  const shown = page.locator('.job-error [role="alert"]');
  await shown.waitFor();
  const failed = await call(grid, grid.apiKey, `/v1/jobs/${job.id}`);
  assert.ok(failed.error, 'the job has an error');
  // Shown as text on one line: its line breaks escaped.
  assert.equal(await shown.locator('.job-error-text').textContent(), asText(failed.error));
  assert.match(await shown.textContent(), /The job failed: .*the input is not what this script expects/s);
  // The chunk's own last failure is listed under the chunks, in words too.
  const reason = page.locator('.chunk-failures .failure-reason');
  await reason.first().waitFor();
  assert.match(await reason.first().textContent(), /client_error: .*the input is not what this script expects/s);
  assert.match(await page.locator('.chunk-failures').textContent(), /Chunk 1 of 1, failed:/);
  assert.equal(await page.locator('#cancel-job').isVisible(), false, 'no cancel button on a finished job');
  assert.deepEqual(browser.errors, []);
});

test('the jobs list follows a running job live, over server-sent events', async () => {
  const { page } = browser;
  const job = await submitPythonJob(grid, {
    script: `import time\ntime.sleep(5)\n${UPPER_SCRIPT}`,
    input: lines(4, 'live'),
    chunkLines: 10,
  });
  const streams = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/jobs/events')) streams.push(r.url()); });
  await signIn(page, grid, grid.apiKey); // lands on the jobs list
  await page.waitForURL(/#\/jobs$/);
  const badge = page.locator(`tr[data-job="${job.id}"] .badge`);
  await badge.waitFor();
  const shownFirst = await badge.getAttribute('data-state');
  assert.notEqual(shownFirst, 'completed', `the job is still running when the list shows: ${JSON.stringify(await call(grid, grid.apiKey, `/v1/jobs/${job.id}`))}`);
  await waitFor(async () => (await badge.getAttribute('data-state')) === 'completed', { timeout: 60_000, message: () => grid.logs() });
  await screenshot(page, 'jobs-list');
  assert.ok(streams.length >= 1, 'the list follows the jobs\' event stream');
  assert.match(await page.locator(`tr[data-job="${job.id}"]`).textContent(), /100 %/);
  // A job created elsewhere (here: through the API) appears on top without a reload.
  const later = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'python-map', script: UPPER_SCRIPT, chunk_lines: 10, params: {} },
  });
  await page.locator(`tr[data-job="${later.id}"]`).waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('tbody tr').first().getAttribute('data-job'), String(later.id));
  assert.equal(streams.length, 1, 'one stream serves the whole list');
  assert.deepEqual(browser.errors, []);
});

test('an interrupted upload resumes without sending part 0 again', async () => {
  const first = await browser.context.newPage();
  await signIn(first, grid, grid.apiKey);
  const input = lines(30, 'resume');
  const file = path.join(grid.dir, 'resume.txt');
  fs.writeFileSync(file, input);
  await first.evaluate(() => localStorage.setItem('idlegrid.partSize', '300'));
  const total = Math.ceil(Buffer.byteLength(input) / 300);
  assert.ok(total >= 3);
  let interruptedJob = null;
  let closed;
  const pageClosed = new Promise((resolve) => { closed = resolve; });
  // Part 0 goes through; when part 1 starts, the tab goes away.
  await first.route('**/input/parts/1', async (route) => {
    const m = route.request().url().match(/\/v1\/jobs\/(\d+)\//);
    interruptedJob = Number(m[1]);
    await route.abort('connectionaborted').catch(() => {});
    await first.close().catch(() => {});
    closed();
  });
  await first.goto(`${grid.url}/#/jobs/new`);
  await fillPythonForm(first, { file, chunkLines: 10 });
  await first.getByRole('button', { name: 'Create and run' }).click();
  await pageClosed;
  assert.ok(interruptedJob, 'part 1 was attempted');
  const stored = await call(grid, grid.apiKey, `/v1/jobs/${interruptedJob}/input/parts`);
  assert.deepEqual(stored.parts.map((p) => p.part), [0], 'only part 0 is stored');
  assert.equal((await call(grid, grid.apiKey, `/v1/jobs/${interruptedJob}`)).state, 'created');

  // A new tab (a reload: sessionStorage is gone, localStorage stays): pick the same file again.
  const second = await browser.context.newPage();
  const sent = [];
  second.on('request', (r) => {
    const m = r.url().match(/\/v1\/jobs\/(\d+)\/input\/parts\/(\d+)$/);
    if (m && r.method() === 'PUT') sent.push([Number(m[1]), Number(m[2])]);
  });
  await signIn(second, grid, grid.apiKey);
  await second.goto(`${grid.url}/#/jobs/new`);
  await second.getByLabel('Input file').setInputFiles(file);
  const note = second.locator('.resume-note');
  await note.getByText(`partly uploaded to job ${interruptedJob}`).waitFor();
  await second.getByRole('button', { name: 'Create and run' }).click();
  assert.equal(await waitForJobPage(second), interruptedJob);
  assert.deepEqual(sent, Array.from({ length: total - 1 }, (_, i) => [interruptedJob, i + 1]), 'parts 1.. sent, part 0 not again');
  assert.equal(await waitForFinalState(second, grid, interruptedJob), 'completed');
  const bytes = await downloadBytes(second);
  assert.equal(bytes.toString('utf8'), input.toUpperCase());
  await second.close();
  assert.deepEqual(browser.errors, []);
});

test('cancel from the job page, after a confirmation', async () => {
  const { page } = browser;
  const job = await submitPythonJob(grid, {
    script: 'import time\ntime.sleep(120)\nopen("output/x", "w").close()\n',
    input: lines(3, 'slow'),
    chunkLines: 10,
  });
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  const cancel = page.getByRole('button', { name: 'Cancel job' });
  await cancel.waitFor();
  await cancel.click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  // Saying no keeps the job.
  await dialog.getByRole('button', { name: 'No, keep it' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.notEqual((await call(grid, grid.apiKey, `/v1/jobs/${job.id}`)).state, 'cancelled');
  await cancel.click();
  await dialog.getByRole('button', { name: 'Yes, cancel the job' }).click();
  assert.equal(await waitForFinalState(page, grid, job.id, 30_000), 'cancelled');
  assert.equal((await call(grid, grid.apiKey, `/v1/jobs/${job.id}`)).state, 'cancelled');
  await waitFor(async () => /cancelled/.test(await page.locator('#status').textContent()), { timeout: 5000, message: 'the status region says cancelled' });
  assert.deepEqual(browser.errors, []);
});

test('the new-job estimate counts the chosen file\'s lines: chunks of N lines are exact', async () => {
  const page = browser.page;
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/new`);
  const file = path.join(grid.dir, 'estimate-lines.txt');
  // 12 long lines: bounded by bytes alone they would be hundreds of chunks of 5 lines.
  fs.writeFileSync(file, Array.from({ length: 12 }, (_, i) => `${'x'.repeat(60)} ${i}`).join('\n'));
  await fillPythonForm(page, { file, chunkLines: 5 });
  const chosen = page.locator('#estimate tr.chosen td').last();
  await waitFor(async () => (await chosen.textContent().catch(() => '')) === '3', { timeout: 10_000, message: () => 'the estimate shows 3 chunks' }).catch(async (e) => { throw new Error(`${e.message}: ${await page.locator('#estimate').textContent()}`); });
});
