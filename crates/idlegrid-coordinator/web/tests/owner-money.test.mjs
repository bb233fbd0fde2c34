// Money and devices, at 1366×900 and 390×844:
// - the owner renames a device, pauses it and resumes it by keyboard, and removes it after
//   confirming; the page shows "paused";
// - the owner's earnings: balance, held and available as the API says, the history with
//   chunks numbered from 1 and paged with "Older entries";
// - a payout asked for by keyboard: checked against what is available, sent as exact
//   micro-credits (the typed decimals, never a float), listed, and shown paid with the
//   operator's reference;
// - the customer's billing: the rate, balance and held, the opening credit, a deposit, each
//   job's hold and release linking to the job, and each job's charge;
// - amounts read and typed the same way everywhere (money.js, checked in the page).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertNoSidewaysScroll, call, closeGrid, expectedMoney, focused, openGrid, PHONE, screenshot, signIn, submitPythonJob, tabTo,
  unlabelledControls, UPPER_SCRIPT, waitFor, WIDE,
} from './helpers.mjs';

let grid;
let browser;
let job;

/** The device's new name: markup in it must stay text. */
const DEVICE_NAME = 'lab <b>machine</b>';
/** Enough one-line chunks for more than a page (100 entries) of the owner's earnings. */
const CHUNKS = 150;

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2, viewport: WIDE }));
  const input = Array.from({ length: CHUNKS }, (_, i) => `line ${i}\n`).join('');
  job = await submitPythonJob(grid, { script: UPPER_SCRIPT, input, chunkLines: 1 });
  await waitFor(async () => (await call(grid, grid.apiKey, `/v1/jobs/${job.id}`)).state === 'completed', {
    timeout: 120_000, interval: 500, message: () => `job ${job.id} did not complete\n${grid.logs()}`,
  });
  job = await call(grid, grid.apiKey, `/v1/jobs/${job.id}`);
  const me = await call(grid, grid.apiKey, '/v1/me');
  await call(grid, grid.operatorKey, `/v1/customers/${me.id}/deposits`, { method: 'POST', body: { amount: 2_500_000, reference: 'invoice-7' } });
});
after(() => closeGrid({ grid, browser }));

const tile = (page, term) => page.locator('.count', { has: page.locator('dt', { hasText: term }) }).locator('dd');

test('amounts are read and typed exactly: credits from decimal text, money for people', async () => {
  const { page } = browser;
  await page.goto(`${grid.url}/#/api`);
  const results = await page.evaluate(async () => {
    const { parseCredits, moneyText, rateText } = await import('/ui/money.js');
    const parsed = {};
    for (const text of ['0.29', '0.1', '1.000001', '123456.789012', ' 2,5 ', '7', '.5']) parsed[text] = parseCredits(text);
    const refused = {};
    for (const text of ['', 'abc', '1.0000001', '-1', '1e3', '1.2.3', '99999999999']) {
      try { refused[text] = parseCredits(text); } catch (e) { refused[text] = e.message; }
    }
    const usd = { currency: 'USD', per_credit: 1 };
    return {
      parsed,
      refused,
      shown: [moneyText(12_500_000, usd), moneyText(1_500, usd), moneyText(2_618, usd), moneyText(-2_500_000, usd), moneyText(6, usd),
        moneyText(10_000_000, { currency: 'EUR', per_credit: 0.05 }), moneyText(3_000_000, { currency: '', per_credit: 1 })],
      rate: [rateText(usd), rateText({ currency: 'EUR', per_credit: 0.05 })],
    };
  });
  // 0.29 * 1e6 is 289999.99999999994 in floating point: the text is split at its point instead.
  assert.deepEqual(results.parsed, { '0.29': 290_000, '0.1': 100_000, '1.000001': 1_000_001, '123456.789012': 123_456_789_012, ' 2,5 ': 2_500_000, 7: 7_000_000, '.5': 500_000 });
  assert.match(results.refused[''], /Type an amount/);
  assert.match(results.refused.abc, /Type an amount/);
  assert.match(results.refused['1.0000001'], /6 decimal places/);
  assert.match(results.refused['-1'], /Type an amount/);
  assert.match(results.refused['1e3'], /Type an amount/);
  assert.match(results.refused['1.2.3'], /Type an amount/);
  assert.match(results.refused['99999999999'], /too large/);
  assert.deepEqual(results.shown, ['12.50 credits (12.50 USD)', '0.0015 credits (0.0015 USD)', '0.002618 credits (0.0026 USD)', '−2.50 credits (−2.50 USD)',
    '0.000006 credits (0.000006 USD)', '10.00 credits (0.50 EUR)', '3.00 credits']);
  assert.deepEqual(results.rate, ['1 credit = 1.00 USD', '1 credit = 0.05 EUR']);
});

test('the owner renames a device, pauses and resumes it by keyboard; paused is shown', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.enrollmentToken);
  const row = page.locator('table.devices tbody tr').first();
  await row.waitFor();
  const id = await row.getAttribute('data-device');
  // Rename (a name with markup stays text).
  const name = DEVICE_NAME;
  await page.getByRole('button', { name: 'Rename device-0' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('New name').fill(name);
  await dialog.getByRole('button', { name: 'Rename' }).click();
  await dialog.waitFor({ state: 'detached' });
  await waitFor(async () => (await row.locator('th').textContent()).startsWith(name));
  assert.equal(await row.locator('th b').count(), 0, 'the name is text, not markup');
  const listed = async () => (await call(grid, grid.enrollmentToken, '/v1/owner/devices')).devices.find((d) => String(d.id) === id);
  assert.equal((await listed()).name, name);

  // Pause by keyboard: the list shows it paused, the focus stays on the device's button.
  await page.locator('#page-title').focus();
  await tabTo(page, (f) => f.label === `Pause ${name}`, 'the Pause button');
  await page.keyboard.press('Enter');
  await page.locator(`table.devices tr[data-device="${id}"][data-status="paused"] .badge`, { hasText: 'paused' }).waitFor();
  assert.equal((await listed()).status, 'paused');
  await waitFor(async () => (await focused(page))?.label === `Resume ${name}`, { timeout: 5000, message: 'focus stays on the button, now Resume' });
  assert.match(await page.locator('#status').textContent(), /is paused: it finishes what it holds/);
  await page.keyboard.press('Enter');
  await page.locator(`table.devices tr[data-device="${id}"]:not([data-status="paused"])`).waitFor();
  assert.notEqual((await listed()).status, 'paused');
  assert.deepEqual(await unlabelledControls(page), []);
  await assertNoSidewaysScroll(page, '#/devices at 1366');
  await screenshot(page, 'devices', { docs: 'wide' });
  await page.setViewportSize(PHONE);
  await assertNoSidewaysScroll(page, '#/devices at 390');
  await page.setViewportSize(WIDE);
  assert.deepEqual(browser.errors, []);
});

test('earnings: balance, held and available as the API says; the history numbers chunks from 1 and pages', async () => {
  const { page } = browser;
  await page.locator('#nav a[href="#/earnings"]').click();
  const rows = page.locator('table.earnings tbody tr');
  await rows.first().waitFor();
  const first = await call(grid, grid.enrollmentToken, '/v1/owner/earnings');
  assert.ok(first.next_before, `more than a page of entries: ${first.entries.length}`);
  assert.equal(await page.locator('#rate').textContent(), '1 credit = 1.00 USD');
  assert.equal(await tile(page, 'Balance').textContent(), expectedMoney(first.balance));
  assert.equal(await tile(page, 'Held until checked').textContent(), expectedMoney(first.held));
  assert.equal(await tile(page, 'Available').textContent(), expectedMoney(first.available));
  assert.equal(await rows.count(), first.entries.length);
  const top = first.entries[0];
  const cells = rows.first().locator('td');
  assert.deepEqual(await cells.allTextContents(), ['Earned', top.device ?? '—', `Job ${job.id}`, `chunk ${top.chunk_index + 1}`, expectedMoney(top.amount)]);
  await screenshot(page, 'earnings', { docs: 'wide' });
  // Every page of the history, by "Older entries".
  const all = [...first.entries];
  for (let before = first.next_before; before;) {
    const next = await call(grid, grid.enrollmentToken, `/v1/owner/earnings?before=${before}`);
    all.push(...next.entries);
    before = next.next_before;
  }
  const older = page.getByRole('button', { name: 'Older entries' });
  while (await older.isVisible()) {
    const shown = await rows.count();
    await older.click();
    await waitFor(async () => (await rows.count()) > shown);
  }
  assert.equal(await rows.count(), all.length);
  const chunks = await page.locator('table.earnings td[data-label="Chunk"]').allTextContents();
  // The API counts chunks from 0; the page from 1.
  assert.deepEqual(chunks, all.map((e) => (e.chunk_index === null ? '—' : `chunk ${e.chunk_index + 1}`)));
  assert.deepEqual(browser.errors, []);
});

test('a payout by keyboard: checked against what is available, sent exactly, listed, then shown paid', async () => {
  const { page } = browser;
  await page.goto(`${grid.url}/#/earnings`);
  await page.locator('table.earnings tbody tr').first().waitFor();
  const earnings = await call(grid, grid.enrollmentToken, '/v1/owner/earnings');
  const amount = page.locator('input[name="amount"]');
  const alert = page.locator('form [role="alert"]');
  await tabTo(page, (f) => f.name === 'amount', 'the amount');
  // More than is available.
  await page.keyboard.type('1');
  await page.keyboard.press('Enter');
  await alert.waitFor();
  assert.equal(await alert.textContent(), `That is more than is available: ${expectedMoney(earnings.available)}.`);
  assert.equal(await amount.getAttribute('aria-invalid'), 'true');
  assert.equal((await focused(page)).name, 'amount', 'focus back on the amount');
  // More decimals than a credit has.
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type('0.0000001');
  await page.keyboard.press('Enter');
  await alert.filter({ hasText: '6 decimal places' }).waitFor();
  // A good amount: 0.0001 credits is 100 micro-credits, exactly.
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type('0.0001');
  await page.keyboard.press('Enter');
  const requested = page.locator('table.payouts tbody tr[data-state="requested"]');
  await requested.waitFor();
  const { payouts } = await call(grid, grid.enrollmentToken, '/v1/owner/payouts');
  assert.equal(payouts.length, 1);
  assert.equal(payouts[0].amount, 100);
  assert.equal(await requested.locator('td[data-label="Amount"]').textContent(), expectedMoney(100));
  assert.match(await page.locator('#status').textContent(), /Asked for a payout of 0\.0001 credits/);
  assert.equal(await tile(page, 'Payouts asked for').textContent(), expectedMoney(100));
  assert.equal(await tile(page, 'Available').textContent(), expectedMoney(earnings.available - 100));
  assert.equal(await amount.inputValue(), '', 'the form is emptied');

  // The operator pays it: the owner sees it paid, with the reference and the note.
  await call(grid, grid.operatorKey, `/v1/admin/payouts/${payouts[0].id}/settle`, { method: 'POST', body: { paid: true, reference: 'bank-42', note: 'thanks <3' } });
  await page.reload();
  const paid = page.locator('table.payouts tbody tr[data-state="paid"]');
  await paid.waitFor();
  assert.equal(await paid.locator('td[data-label="Reference"]').textContent(), 'bank-42');
  assert.equal(await paid.locator('td[data-label="Note"]').textContent(), 'thanks <3');
  const payoutEntry = page.locator('table.earnings tbody tr[data-kind="payout"]');
  await payoutEntry.waitFor();
  assert.equal(await payoutEntry.locator('td[data-label="Amount"]').textContent(), expectedMoney(-100));
  await assertNoSidewaysScroll(page, '#/earnings at 1366');
  await page.setViewportSize(PHONE);
  await assertNoSidewaysScroll(page, '#/earnings at 390');
  await screenshot(page, 'earnings-phone', { docs: 'phone' });
  await page.setViewportSize(WIDE);
  assert.deepEqual(browser.errors, []);
});

test('the customer\'s billing: the rate, balance, entries linking to their job, and each job\'s charge', async () => {
  const page = await browser.context.newPage();
  await signIn(page, grid, grid.apiKey);
  await screenshot(page, 'jobs', { docs: 'wide' });
  await page.locator('#nav a[href="#/billing"]').click();
  const entries = page.locator('table.entries tbody tr');
  await entries.first().waitFor();
  const balance = await call(grid, grid.apiKey, '/v1/balance');
  assert.equal(await page.locator('#rate').textContent(), '1 credit = 1.00 USD');
  assert.equal(await tile(page, 'Balance').textContent(), expectedMoney(balance.balance));
  assert.equal(await tile(page, 'Held for running jobs').textContent(), expectedMoney(balance.held));
  assert.equal(await entries.count(), balance.entries.length);
  const entry = (txn) => page.locator(`table.entries tbody tr[data-txn="${txn}"]`);
  const me = await call(grid, grid.apiKey, '/v1/me');
  assert.equal(await entry('opening:1').locator('td[data-label="What"]').textContent(), 'Opening credit');
  assert.equal(await entry(`deposit:${me.id}:invoice-7`).locator('td[data-label="What"]').textContent(), 'Deposit, reference invoice-7');
  assert.equal(await entry(`deposit:${me.id}:invoice-7`).locator('td[data-label="Amount"]').textContent(), '2.50 credits (2.50 USD)');
  for (const txn of [`hold:${job.id}`, `release:${job.id}`]) {
    const listed = balance.entries.find((e) => e.txn === txn);
    assert.ok(listed, `${txn} is an entry`);
    assert.equal(await entry(txn).locator('a').getAttribute('href'), `#/jobs/${job.id}`);
    assert.equal(await entry(txn).locator('td[data-label="Amount"]').textContent(), expectedMoney(listed.amount));
  }
  const charge = page.locator(`table.charges tbody tr[data-job="${job.id}"]`);
  assert.equal(await charge.locator('td[data-label="Charged"]').textContent(), expectedMoney(job.cost.charged));
  assert.equal(await charge.locator('td[data-label="Quote"]').textContent(), expectedMoney(job.cost.quote));
  assert.deepEqual(await unlabelledControls(page), []);
  await assertNoSidewaysScroll(page, '#/billing at 1366');
  await screenshot(page, 'billing', { docs: 'wide' });
  await page.setViewportSize(PHONE);
  await assertNoSidewaysScroll(page, '#/billing at 390');
  await page.setViewportSize(WIDE);
  // A hold's link opens its job.
  await entry(`hold:${job.id}`).locator('a').click();
  await page.waitForURL(new RegExp(`#/jobs/${job.id}$`));
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('the owner removes a device only after confirming', async () => {
  const { page } = browser;
  await page.goto(`${grid.url}/#/devices`);
  const row = page.locator('table.devices tbody tr').first();
  await row.waitFor();
  const remove = page.getByRole('button', { name: `Remove ${DEVICE_NAME}` });
  const dialog = page.getByRole('dialog');
  await remove.click();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal((await call(grid, grid.enrollmentToken, '/v1/owner/devices')).devices.length, 1, 'cancelled: the device stays');
  await remove.click();
  await dialog.getByRole('button', { name: 'Remove device' }).click();
  await page.locator('table.devices').waitFor({ state: 'detached' });
  assert.match(await page.locator('main').textContent(), /No devices yet/);
  assert.equal((await call(grid, grid.enrollmentToken, '/v1/owner/devices')).devices.length, 0);
  assert.deepEqual(browser.errors, []);
});
