// 9. Accessibility on every page: every input/select/textarea has a label (an accessible
//    name), focus lands on the main heading, the skip link works, Tab reaches the main
//    controls with a visible focus, and the new-job form is filled and submitted by keyboard
//    only. Also: no page scrolls sideways on a phone-sized viewport.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { closeGrid, focused, openGrid, signIn, tabTo, unlabelledControls, waitFor, waitForFinalState, waitForJobPage, screenshot } from './helpers.mjs';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 1, slots: 2 })));
after(() => closeGrid({ grid, browser }));

/** Presses Tab up to `max` times, returning what got focus. */
async function tabThrough(page, max = 40) {
  const seen = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    if (f) seen.push(f);
  }
  return seen;
}

/** The checks every page gets: labels, heading focus, skip link, Tab reaching `expected`. */
async function checkPage(page, hash, expected) {
  // Arrive by navigating within the app (a link or the address bar's hash).
  await page.goto(`${grid.url}/#/nowhere`);
  await page.locator('h1#page-title').waitFor();
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.locator('h1#page-title').waitFor();
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'page-title', `${hash}: focus on the heading`);
  assert.deepEqual(await unlabelledControls(page), [], `${hash}: unlabelled controls`);
  // After a fresh load the skip link is the first stop, and it moves focus to the heading.
  await page.reload();
  await page.locator('h1#page-title').waitFor();
  await page.waitForTimeout(300);
  await page.keyboard.press('Tab');
  const skip = await focused(page);
  assert.equal(skip && skip.id, 'skip-link', `${hash}: the first Tab stop is the skip link`);
  assert.ok(skip.visible, `${hash}: the skip link shows its focus`);
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'page-title', `${hash}: the skip link moves focus`);
  assert.equal(page.url().endsWith(hash), true, `${hash}: the skip link does not change the page`);
  const seen = await tabThrough(page);
  for (const [what, match] of Object.entries(expected)) {
    assert.ok(seen.some(match), `${hash}: Tab reaches ${what}; reached ${JSON.stringify(seen.map((s) => s.id || s.name || s.href || s.text))}`);
  }
  const invisible = seen.filter((s) => !s.visible);
  assert.deepEqual(invisible, [], `${hash}: focus visible on every stop`);
}

const byName = (name) => (f) => f.name === name;
const byText = (text) => (f) => f.text === text;
const byHref = (href) => (f) => f.href === href;

async function noSidewaysScroll(page, hash) {
  await page.goto(`${grid.url}/${hash}`);
  await page.locator('h1#page-title').waitFor();
  await page.waitForTimeout(500);
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `${hash}: ${scroll}px wide in a ${width}px viewport`);
}

test('every page is labelled and keyboard-usable; the new-job form works by keyboard only', async () => {
  const { page } = browser;
  // File choosers are intercepted from the start (setting that up takes a round trip to the browser).
  const choosers = [];
  page.on('filechooser', (c) => choosers.push(c));
  await checkPage(page, '#/signin', {
    'the secret field': byName('secret'), 'the show checkbox': (f) => f.id === 'show-secret', 'the submit button': byText('Sign in'),
  });
  await checkPage(page, '#/api', { 'the reference contents': (f) => (f.href || '').startsWith('#/api/tags/'), 'a schema link': (f) => (f.href || '').startsWith('#/api/schemas/') });

  // Sign in by keyboard.
  await page.goto(`${grid.url}/#/signin`);
  await tabTo(page, byName('secret'), 'the secret field');
  await page.keyboard.type(grid.apiKey);
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/jobs$/);

  // New job by keyboard only.
  await page.goto(`${grid.url}/#/jobs/new`);
  await page.locator('select[name="app"]').waitFor();
  await page.evaluate(() => localStorage.setItem('idlegrid.partSize', '200'));
  const input = Array.from({ length: 12 }, (_, i) => `keyboard ${i}\n`).join('');
  const file = path.join(grid.dir, 'keys.txt');
  fs.writeFileSync(file, input);
  await tabTo(page, byName('app'), 'the app select');
  await page.keyboard.type('python');
  assert.equal(await page.locator('select[name="app"]').inputValue(), 'python-map');
  await tabTo(page, byName('input'), 'the input file');
  await page.keyboard.press('Space');
  const chooser = await waitFor(() => choosers.shift(), { timeout: 5000, interval: 50, message: 'Space on the file input opens the file chooser' });
  await chooser.setFiles(file);
  await tabTo(page, byName('script'), 'the script');
  for (const line of ['import os, shutil', 'name = os.listdir("input")[0]', 'shutil.copy(os.path.join("input", name), "output/copy.txt")']) {
    await page.keyboard.type(line);
    await page.keyboard.press('Enter');
  }
  await tabTo(page, byName('chunk_lines'), 'lines per chunk');
  await page.keyboard.type('4');
  const speed = await tabTo(page, (f) => f.type === 'radio', 'the speed choice');
  assert.ok(speed);
  await page.keyboard.press('ArrowDown'); // Standard → Fast
  // (The speed's radios: the video fields, hidden for this app, have radios of their own.)
  assert.equal(await page.getByRole('group', { name: 'Speed and price' }).locator('input[type="radio"]:checked').getAttribute('value'), 'fast');
  // The price and time of every speed are shown before anything runs, the chosen one marked.
  await page.locator('#estimate tr.chosen[data-tier="fast"]').waitFor({ timeout: 10000 });
  assert.equal(await page.locator('#estimate tbody tr').count(), 3);
  assert.match(await page.locator('#estimate tr.chosen .price').textContent(), /^\d+\.\d{6} credits$/);
  await screenshot(page, 'new-job-estimate');
  await tabTo(page, byText('Create and run'), 'the submit button');
  await page.keyboard.press('Enter');
  const jobId = await waitForJobPage(page);
  assert.equal(await waitForFinalState(page, grid, jobId), 'completed');
  const job = await (await fetch(`${grid.url}/v1/jobs/${jobId}`, { headers: { Authorization: `Bearer ${grid.apiKey}` } })).json();
  assert.equal(job.preferences.tier, 'fast', 'the speed chosen by keyboard was sent');
  assert.ok(job.cost && job.cost.charged > 0 && job.cost.charged <= job.cost.quote, 'the job was charged within its quote');
  assert.equal(job.chunks.total, 3);

  await checkPage(page, '#/jobs', { 'the new-job link': byHref('#/jobs/new'), 'the job link': byHref(`#/jobs/${jobId}`), 'sign out': byText('Sign out') });
  const doc = await (await fetch(`${grid.url}/openapi.json`)).json();
  const webhooks = Boolean(doc.components.schemas.CreateJob.properties.webhook);
  await checkPage(page, '#/jobs/new', {
    'the app select': byName('app'), 'the input file': byName('input'), 'the script': byName('script'),
    'the parameters': byName('params'), 'the submit button': byText('Create and run'),
    ...(webhooks ? { 'the webhook URL': byName('webhook') } : {}),
  });
  assert.equal(await page.locator('input[name="webhook"]').isVisible(), webhooks, 'the webhook field shows where the server takes webhooks');
  await checkPage(page, `#/jobs/${jobId}`, { 'the download link': (f) => f.id === 'download' });
  await checkPage(page, '#/billing', { 'the job\'s charge': byHref(`#/jobs/${jobId}`) });
  await checkPage(page, '#/keys', { 'the new key\'s name': byName('key-name'), 'the make button': byText('Make an API key') });
  for (const hash of ['#/jobs', '#/jobs/new', `#/jobs/${jobId}`, '#/billing', '#/keys', '#/api']) {
    await page.setViewportSize({ width: 375, height: 740 });
    await noSidewaysScroll(page, hash);
  }
  await page.setViewportSize({ width: 1200, height: 900 });

  // The owner's and the operator's pages.
  const owner = await browser.context.newPage();
  await signIn(owner, grid, grid.enrollmentToken);
  await checkPage(owner, '#/devices', { 'the copy button': byText('Copy'), 'sign out': byText('Sign out') });
  await checkPage(owner, '#/earnings', { 'the payout amount': byName('amount'), 'the payout button': byText('Request payout') });
  await owner.setViewportSize({ width: 375, height: 740 });
  await noSidewaysScroll(owner, '#/devices');
  await noSidewaysScroll(owner, '#/earnings');
  await owner.close();
  if (grid.operatorKey) {
    const operator = await browser.context.newPage();
    await signIn(operator, grid, grid.operatorKey);
    await checkPage(operator, '#/grid', { 'the grid link': byHref('#/grid'), 'sign out': byText('Sign out') });
    await checkPage(operator, '#/admin/customers', { 'the name filter': byName('name'), 'the create button': byText('Create customer') });
    await checkPage(operator, '#/admin/payouts', { 'the state filter': byName('state') });
    await operator.setViewportSize({ width: 375, height: 740 });
    for (const hash of ['#/grid', '#/admin/customers', '#/admin/owners', '#/admin/devices', '#/admin/jobs', '#/admin/payouts']) {
      await noSidewaysScroll(operator, hash);
    }
    await operator.close();
  } else {
    assert.fail('no operator key: the grid page could not be checked');
  }
  assert.deepEqual(browser.errors, []);
});
