// 6. The device owner signs in with the enrollment token: the worker is listed online or busy,
//    and the add-a-device command, with a token made for it, is shown and copied.
// 7. The operator signs in with the operator key: after a job ran, the charts have data.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call, closeGrid, expectedMoney, openGrid, signIn, submitPythonJob, UPPER_SCRIPT, waitFor, screenshot } from './helpers.mjs';

let grid;
let browser;

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2 }));
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: grid.url });
});
after(() => closeGrid({ grid, browser }));

test('the owner sees the device online and the command to add one', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.enrollmentToken);
  await page.waitForURL(/#\/devices$/);
  assert.match(await page.locator('#who').textContent(), /owner/);
  const row = page.locator('table.devices tbody tr').first();
  await waitFor(async () => ['online', 'busy'].includes(await row.locator('.badge').getAttribute('data-state', { timeout: 1000 })), {
    timeout: 30_000, message: async () => `devices: ${await page.locator('main').textContent()}\n${grid.logs()}`,
  });
  const listed = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  assert.equal(await page.locator('table.devices tbody tr').count(), listed.devices.length);
  // The page keeps a session, not the enrollment token: the command gets a token made for it.
  assert.match(await page.locator('.command-text').textContent(), /--token <enrollment token>$/);
  await page.getByRole('button', { name: 'Make a token for this command' }).click();
  await page.getByText('Keep it now:').waitFor();
  const command = (await page.locator('.command-text').textContent()).trim();
  const token = command.match(/^idlegrid worker --coordinator (\S+) --token (ige_\S+)$/);
  assert.ok(token, command);
  assert.equal(token[1], grid.url);
  assert.equal((await call(grid, token[2], '/v1/me')).kind, 'owner', 'the token in the command is the owner\'s');
  const { secrets } = await call(grid, grid.enrollmentToken, '/v1/secrets');
  assert.ok(secrets.some((s) => s.kind === 'key' && s.name.startsWith('worker command') && token[2].startsWith(s.prefix)), 'it is listed among the keys');
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.getByText(/Copied\.|Selected/).first().waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, command);
  await screenshot(page, 'owner-devices');
  assert.deepEqual(browser.errors, []);
});

test('the operator sees the grid charts with data after a job ran', async () => {
  assert.ok(grid.operatorKey, 'the coordinator gives an operator key (ready line or credentials.json)');
  const input = Array.from({ length: 60 }, (_, i) => `row ${i}\n`).join('');
  const job = await submitPythonJob(grid, { script: UPPER_SCRIPT, input, chunkLines: 5 });
  await waitFor(async () => (await call(grid, grid.apiKey, `/v1/jobs/${job.id}`)).state === 'completed', {
    timeout: 120_000, interval: 500, message: () => `job ${job.id} did not complete\n${grid.logs()}`,
  });
  const page = await browser.context.newPage();
  await signIn(page, grid, grid.operatorKey);
  await page.waitForURL(/#\/grid$/);
  assert.match(await page.locator('#who').textContent(), /operator/);
  const figures = page.locator('figure.chart-figure');
  await waitFor(async () => (await figures.count()) === 4);
  const completed = page.locator('figure[data-chart="Tasks completed per second"] svg');
  // The sampler records every couple of seconds: wait for a sample that saw the completions.
  await waitFor(async () => Number(await completed.getAttribute('data-max')) > 0, {
    timeout: 30_000, message: async () => `stats: ${JSON.stringify(await call(grid, grid.operatorKey, '/v1/grid/stats'))}`,
  });
  for (const title of ['Devices', 'Tasks completed per second', 'Queue depth per stage', 'Failures and reassignments per second']) {
    const svg = page.locator(`figure[data-chart="${title}"] svg`);
    assert.ok(Number(await svg.getAttribute('data-points')) >= 1, `${title} has points`);
    assert.ok(await svg.locator('.series').count() >= 1, `${title} draws its series`);
    const caption = await page.locator(`figure[data-chart="${title}"] figcaption`).textContent();
    assert.match(caption, /^Latest/, `${title} caption: ${caption}`);
  }
  await screenshot(page, 'operator-grid');
  const devices = page.locator('figure[data-chart="Devices"] svg');
  assert.ok(Number(await devices.getAttribute('data-max')) >= 1, 'a device was online');
  const stats = await call(grid, grid.operatorKey, '/v1/grid/stats');
  assert.ok(stats.samples.some((s) => s.completed_per_sec > 0));
  const points = Number(await completed.locator('.series').first().getAttribute('data-points'));
  assert.ok(points >= Math.min(2, stats.samples.length), `drawn points ${points}`);
  await page.close();
  // The job's validated work earned the device's owner: the owner's page shows it, in credits
  // (and dollars), as the API says.
  const owner = await browser.context.newPage();
  await signIn(owner, grid, grid.enrollmentToken);
  await owner.waitForURL(/#\/devices$/);
  const listed = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  assert.ok(listed.totals.earned > 0, `the owner earned: ${JSON.stringify(listed.totals)}`);
  const earned = owner.locator('.count', { has: owner.locator('dt', { hasText: 'Earned so far' }) }).locator('dd');
  await waitFor(async () => (await earned.textContent({ timeout: 1000 })) === expectedMoney(listed.totals.earned), {
    timeout: 10_000, message: async () => `shown: ${await earned.textContent()}, earned: ${listed.totals.earned}`,
  });
  await screenshot(owner, 'owner-earnings');
  await owner.close();
  assert.deepEqual(browser.errors, []);
});
