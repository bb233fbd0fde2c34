// The operator's pages, at 1366×900 and 390×844:
// - customers: create one (its API key shown once), filter by name and state (kept in the
//   address), suspend it by keyboard (its key is refused) and resume it, set its quotas, add
//   credit, delete it after confirming;
// - owners: create one as a customer's own fleet (its token shown once), suspend and resume,
//   its devices;
// - devices by status and owner, jobs by state and customer;
// - payouts: pay one with a reference, refuse another with a note.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertNoSidewaysScroll, call, closeGrid, focused, openGrid, PHONE, screenshot, signIn, submitPythonJob, tabTo,
  unlabelledControls, UPPER_SCRIPT, waitFor, WIDE,
} from './helpers.mjs';

let grid;
let browser;
let page;
let job;

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2, viewport: WIDE }));
  const input = Array.from({ length: 30 }, (_, i) => `row ${i}\n`).join('');
  job = await submitPythonJob(grid, { script: UPPER_SCRIPT, input, chunkLines: 5 });
  await waitFor(async () => (await call(grid, grid.apiKey, `/v1/jobs/${job.id}`)).state === 'completed', {
    timeout: 120_000, interval: 500, message: () => `job ${job.id} did not complete\n${grid.logs()}`,
  });
  // Two payouts for the operator to settle.
  for (const amount of [2, 1]) await call(grid, grid.enrollmentToken, '/v1/owner/payouts', { method: 'POST', body: { amount } });
  page = browser.page;
  await signIn(page, grid, grid.operatorKey);
});
after(() => closeGrid({ grid, browser }));

const row = (kind, name) => page.locator(`table.accounts tbody tr[data-${kind}]`, { has: page.locator('th', { hasText: new RegExp(`^${name} #`) }) });
const status = (code) => async (secret) => (await call(grid, secret, '/v1/me', { raw: true })).status === code;

/** Checks the page at both sizes: no control without a label, no sideways scrolling. */
async function fits(what) {
  assert.deepEqual(await unlabelledControls(page), [], `${what}: unlabelled controls`);
  await assertNoSidewaysScroll(page, `${what} at 1366`);
  await page.setViewportSize(PHONE);
  await assertNoSidewaysScroll(page, `${what} at 390`);
  await page.setViewportSize(WIDE);
}

test('customers: create, filter, suspend by keyboard and resume, quotas, credit, delete after confirming', async () => {
  await page.locator('#nav a[href="#/admin/customers"]').click();
  await row('customer', 'default').waitFor();
  assert.match(await page.locator('main').textContent(), /1 credit = 1\.00 USD/);

  // Create: the API key is shown once, and works.
  await page.getByLabel('Name', { exact: true }).fill('acme');
  await page.getByLabel('Most jobs at once').fill('3');
  await page.getByRole('button', { name: 'Create customer' }).click();
  const key = (await page.locator('.secret-once code.secret').textContent()).trim();
  assert.match(key, /^igk_/);
  assert.match(await page.locator('.secret-once').textContent(), /Keep it now/);
  assert.deepEqual(await call(grid, key, '/v1/me').then(({ kind, name }) => ({ kind, name })), { kind: 'customer', name: 'acme' });
  const acme = row('customer', 'acme');
  await acme.waitFor();
  assert.equal(await acme.locator('td[data-label="Quotas"]').textContent(), '3 jobs at once');
  await screenshot(page, 'operator-customers', { docs: 'wide' });

  // Filters: by name, kept in the address (a reload keeps them), then by state.
  await page.getByLabel('Name contains').fill('acm');
  await page.getByRole('button', { name: 'Show' }).click();
  await row('customer', 'default').waitFor({ state: 'detached' });
  assert.equal(await page.locator('table.accounts tbody tr').count(), 1);
  assert.match(page.url(), /#\/admin\/customers\?name=acm$/);
  await page.reload();
  await acme.waitFor();
  assert.equal(await page.getByLabel('Name contains').inputValue(), 'acm');
  await page.getByLabel('State').selectOption('suspended');
  await page.getByText('No customers match.').waitFor();
  await page.getByLabel('State').selectOption('');
  await acme.waitFor();

  // Suspend by keyboard, after confirming: its key is refused; resume.
  await page.locator('#page-title').focus();
  await tabTo(page, (f) => f.label === 'Suspend acme', 'Suspend acme');
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.equal((await focused(page)).text, 'Cancel');
  await page.keyboard.press('Tab');
  assert.equal((await focused(page)).text, 'Suspend');
  await page.keyboard.press('Enter');
  await page.locator('table.accounts tr[data-state="suspended"]', { hasText: 'acme' }).waitFor();
  await waitFor(() => status(403)(key), { timeout: 5000, message: 'a suspended customer\'s key is refused' });
  assert.equal((await call(grid, key, '/v1/me', { raw: true }).then((r) => r.json())).error.code, 'account_suspended');
  await waitFor(async () => (await focused(page))?.label === 'Resume acme', { timeout: 5000, message: 'focus on the row\'s button, now Resume' });
  await page.keyboard.press('Enter');
  await page.locator('table.accounts tr[data-state="active"]', { hasText: 'acme' }).waitFor();
  assert.equal((await call(grid, key, '/v1/me')).name, 'acme', 'resumed: the key works again');

  // Quotas: a wrong value is refused in the dialog, then saved.
  await page.getByRole('button', { name: 'Quotas of acme' }).click();
  await dialog.waitFor();
  assert.equal(await dialog.getByLabel('Most jobs at once').inputValue(), '3');
  await dialog.getByLabel('Most data kept (GiB)').fill('0.5');
  await dialog.getByLabel('Requests a second').fill('many');
  await dialog.getByRole('button', { name: 'Save quotas' }).click();
  await dialog.getByRole('alert').waitFor();
  assert.match(await dialog.getByRole('alert').textContent(), /whole number/);
  assert.equal(await dialog.getByLabel('Requests a second').getAttribute('aria-invalid'), 'true');
  await dialog.getByLabel('Requests a second').fill('5');
  await dialog.getByRole('button', { name: 'Save quotas' }).click();
  await dialog.waitFor({ state: 'detached' });
  await acme.locator('td[data-label="Quotas"]', { hasText: '3 jobs at once, 512 MiB kept, 5 requests/s' }).waitFor();
  const listed = async () => (await call(grid, grid.operatorKey, '/v1/admin/customers?name=acme')).customers[0];
  assert.deepEqual((await listed()).quotas, { max_running_jobs: 3, max_stored_bytes: 512 * 1024 * 1024, requests_per_sec: 5 });

  // Credit: 2.5 credits, exactly.
  const before = (await listed()).balance;
  await page.getByRole('button', { name: 'Add credit to acme' }).click();
  await dialog.getByLabel('Amount (credits)').fill('2.5');
  await dialog.getByLabel('Payment reference').fill('inv-1');
  await dialog.getByRole('button', { name: 'Add credit' }).click();
  await dialog.waitFor({ state: 'detached' });
  await waitFor(async () => (await listed()).balance === before + 2_500_000);
  await acme.locator('td[data-label="Balance"]', { hasText: '102.50 credits (102.50 USD)' }).waitFor();

  await fits('#/admin/customers');
  await page.setViewportSize(PHONE);
  await screenshot(page, 'operator-customers-phone', { docs: 'phone' });
  await page.setViewportSize(WIDE);

  // Delete, after confirming: gone from the list, listed as deleted, its key refused.
  await page.getByRole('button', { name: 'Delete acme' }).click();
  await dialog.getByRole('button', { name: 'Delete customer' }).click();
  await acme.waitFor({ state: 'detached' });
  assert.ok(await status(401)(key), 'a deleted customer\'s key is refused');
  await page.getByLabel('State').selectOption('deleted');
  await page.locator('table.accounts tr[data-state="deleted"]', { hasText: 'acme' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Suspend acme' }).count(), 0, 'a deleted customer has no actions');
  assert.deepEqual(browser.errors, []);
});

test('owners: create one as a customer\'s fleet (token shown once), suspend and resume, its devices', async () => {
  await page.locator('#nav a[href="#/admin/owners"]').click();
  await row('owner', 'default').waitFor();
  await page.getByLabel('Name', { exact: true }).fill('lab');
  await page.getByLabel('Customer', { exact: true }).selectOption({ label: 'default (1)' });
  await page.getByRole('button', { name: 'Create owner' }).click();
  const token = (await page.locator('.secret-once code.secret').textContent()).trim();
  assert.match(token, /^ige_/);
  assert.deepEqual(await call(grid, token, '/v1/me').then(({ kind, name }) => ({ kind, name })), { kind: 'owner', name: 'lab' });
  const lab = row('owner', 'lab');
  await lab.waitFor();
  assert.equal(await lab.locator('td[data-label="Customer’s fleet"]').textContent(), 'default');

  await page.getByRole('button', { name: 'Suspend lab' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Suspend' }).click();
  await page.locator('table.accounts tr[data-state="suspended"]', { hasText: 'lab' }).waitFor();
  assert.ok(await status(403)(token), 'a suspended owner\'s token is refused');
  await page.getByRole('button', { name: 'Resume lab' }).click();
  await page.locator('table.accounts tr[data-state="active"]', { hasText: 'lab' }).waitFor();
  await fits('#/admin/owners');

  // An owner's devices: the devices page, filtered to that owner.
  await row('owner', 'default').getByRole('link', { name: 'Devices of default' }).click();
  await page.waitForURL(/#\/admin\/devices\?owner=1$/);
  await page.locator('table.grid-devices tbody tr', { hasText: 'device-0' }).waitFor();
  assert.equal(await page.getByLabel('Owner').inputValue(), '1');
  assert.deepEqual(browser.errors, []);
});

test('devices by status and owner; jobs by state and customer', async () => {
  await page.goto(`${grid.url}/#/admin/devices`);
  const devices = page.locator('table.grid-devices tbody tr');
  await devices.first().waitFor();
  const live = (await call(grid, grid.operatorKey, '/v1/admin/devices')).devices;
  assert.equal(await devices.count(), live.length);
  const state = live[0].status;
  await page.getByLabel('Status').selectOption(state);
  await page.waitForURL(new RegExp(`#/admin/devices\\?status=${state}$`));
  await page.locator(`table.grid-devices tr[data-status="${state}"]`).first().waitFor();
  await page.getByLabel('Status').selectOption('quarantined');
  await page.getByText('No devices match.').waitFor();
  await page.getByLabel('Status').selectOption('');
  await page.getByLabel('Owner').selectOption({ label: 'lab (2)' });
  await page.getByText('No devices match.').waitFor();
  await page.getByLabel('Owner').selectOption('');
  await devices.first().waitFor();
  await fits('#/admin/devices');

  await page.locator('#nav a[href="#/admin/jobs"]').click();
  const jobs = page.locator('table.grid-jobs tbody tr');
  await jobs.first().waitFor();
  const first = jobs.first();
  assert.equal(await first.getAttribute('data-job'), String(job.id));
  assert.equal(await first.locator('td[data-label="Customer"]').textContent(), 'default');
  assert.equal(await first.locator('td[data-label="Chunks done"]').textContent(), '6 of 6');
  await page.getByLabel('State').selectOption('failed');
  await page.getByText('No jobs match.').waitFor();
  await page.getByLabel('State').selectOption('completed');
  await page.locator(`table.grid-jobs tr[data-job="${job.id}"]`).waitFor();
  await page.getByLabel('Customer').selectOption({ label: 'acme (2)' });
  await page.getByText('No jobs match.').waitFor();
  assert.match(page.url(), /#\/admin\/jobs\?state=completed&customer=2$/);
  await fits('#/admin/jobs');
  assert.deepEqual(browser.errors, []);
});

test('payouts: pay one with a reference, refuse another with a note', async () => {
  await page.goto(`${grid.url}/#/admin/payouts?state=requested`);
  const rows = page.locator('table.payouts tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 2);
  const [newer, older] = (await call(grid, grid.operatorKey, '/v1/admin/payouts?state=requested')).payouts;
  const dialog = page.getByRole('dialog');

  await page.locator(`tr[data-payout="${older.id}"]`).getByRole('button', { name: /^Pay / }).click();
  await dialog.getByRole('button', { name: 'Record as paid' }).click();
  await dialog.getByRole('alert').filter({ hasText: 'Give the payment’s reference.' }).waitFor();
  await dialog.getByLabel('Payment reference').fill('bank-7');
  await dialog.getByRole('button', { name: 'Record as paid' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.locator(`tr[data-payout="${older.id}"]`).waitFor({ state: 'detached' });

  await page.locator(`tr[data-payout="${newer.id}"]`).getByRole('button', { name: /^Refuse/ }).click();
  await dialog.getByLabel('Note to the owner').fill('one at a time, please');
  await dialog.getByRole('button', { name: 'Refuse payout' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByText('No payouts match.').waitFor();

  const settled = Object.fromEntries((await call(grid, grid.operatorKey, '/v1/admin/payouts')).payouts.map((p) => [p.id, p]));
  assert.equal(settled[older.id].state, 'paid');
  assert.equal(settled[older.id].reference, 'bank-7');
  assert.equal(settled[newer.id].state, 'refused');
  assert.equal(settled[newer.id].note, 'one at a time, please');
  await page.getByLabel('State').selectOption('paid');
  const paid = page.locator(`tr[data-payout="${older.id}"][data-state="paid"]`);
  await paid.waitFor();
  assert.equal(await paid.locator('td[data-label="Reference"]').textContent(), 'bank-7');
  assert.equal(await paid.locator('td[data-label="Amount"]').textContent(), '0.000002 credits (0.000002 USD)');
  await fits('#/admin/payouts');
  assert.deepEqual(browser.errors, []);
});
