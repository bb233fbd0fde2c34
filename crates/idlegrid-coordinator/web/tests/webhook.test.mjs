// Webhooks (while the server does not take them yet, this test is skipped): a job created with
// a webhook URL shows its signing secret once, and the job page lists the deliveries.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { call, closeGrid, openGrid, signIn, UPPER_SCRIPT, waitFor, waitForFinalState, waitForJobPage } from './helpers.mjs';

let grid;
let browser;
let receiver;
const received = [];

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2, serveArgs: ['--allow-private-sources'] }));
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => { received.push({ headers: req.headers, body: Buffer.concat(chunks).toString() }); res.end('ok'); });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  if (receiver) receiver.close();
  await closeGrid({ grid, browser });
});

test('a webhook job shows its secret once and lists its deliveries', async (t) => {
  const doc = await (await fetch(`${grid.url}/openapi.json`)).json();
  if (!doc.components.schemas.CreateJob.properties.webhook) {
    t.skip('this coordinator does not take webhooks yet (CreateJob has no `webhook`)');
    return;
  }
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  const file = path.join(grid.dir, 'hook.txt');
  fs.writeFileSync(file, 'a\nb\nc\n');
  await page.goto(`${grid.url}/#/jobs/new`);
  await page.getByLabel('App', { exact: true }).selectOption('python-map');
  await page.getByLabel('Input file').setInputFiles(file);
  await page.getByLabel('Task script (Python)').fill(UPPER_SCRIPT);
  const url = `http://127.0.0.1:${receiver.address().port}/hook`;
  await page.getByLabel('Webhook URL (optional)').fill(url);
  await page.getByRole('button', { name: 'Create and run' }).click();
  const jobId = await waitForJobPage(page);
  const secret = page.locator('.secret-note code.secret');
  await secret.waitFor();
  const shownSecret = (await secret.textContent()).trim();
  assert.ok(shownSecret.length >= 8, 'a signing secret is shown');
  assert.match(await page.locator('.secret-note').textContent(), /will not be shown again/);
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.equal(job.webhook.url, url);
  assert.equal(job.webhook.secret, undefined, 'the job view does not carry the secret');
  assert.equal(await waitForFinalState(page, grid, jobId), 'completed');
  // Shown once: the job page, opened again, has no secret.
  await page.goto(`${grid.url}/#/jobs`);
  await page.goto(`${grid.url}/#/jobs/${jobId}`);
  await page.locator('.state-line .badge').waitFor();
  assert.equal(await page.locator('.secret-note').count(), 0);
  // The deliveries table lists what the server says it delivered.
  await waitFor(async () => {
    const events = (await call(grid, grid.apiKey, `/v1/jobs/${jobId}/webhook/deliveries`)).events;
    await page.goto(`${grid.url}/#/jobs`);
    await page.goto(`${grid.url}/#/jobs/${jobId}`);
    const table = page.locator('section[aria-labelledby="hooks-h"] tbody tr');
    await page.locator('section[aria-labelledby="hooks-h"]').waitFor({ timeout: 5000 });
    return events.length > 0 && (await table.count()) === events.length;
  }, { timeout: 60_000, interval: 2000, message: () => `deliveries; received ${received.length}` });
  // The secret shown is the one the requests are signed with.
  await waitFor(() => received.some((r) => JSON.parse(r.body).state === 'completed'), { timeout: 30_000, message: 'the completed event arrives' });
  for (const r of received) {
    const expected = createHmac('sha256', shownSecret).update(`${r.headers['x-idlegrid-timestamp']}.${r.body}`).digest('hex');
    assert.equal(r.headers['x-idlegrid-signature'], `sha256=${expected}`);
  }
  const delivered = await page.locator('table.deliveries tbody tr[data-delivered="yes"]').count();
  assert.ok(delivered >= 1, 'the table shows delivered events');
  assert.match(await page.locator('table.deliveries').textContent(), /completed/);
  assert.deepEqual(browser.errors, []);
});
