// Accounts in the dashboard, at 1366×900 and 390×844:
// - signing in trades the key for a dashboard session (the tab never keeps the key); every
//   kind of account has a Keys page in its nav;
// - the Keys page by keyboard only: sign in, make a key and copy it (shown once), revoke one
//   (confirmed in a dialog), the account's last key refused with the server's reason, rotate;
// - a session ended elsewhere (revoked from the account's keys, or its account deleted by the
//   operator) signs the page out, and the sign-in page says why; signing in again goes back;
// - sign-up: offered only where the grid takes it; where it does (`idlegrid serve --signup`),
//   the open kinds and a name, the new key shown once with Copy, then Continue signs in with it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertNoSidewaysScroll, call, closeGrid, focused, openGrid, PHONE, screenshot, signIn, startGrid, tabTo,
  unlabelledControls, WIDE,
} from './helpers.mjs';

let grid;
let browser;

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 0, viewport: WIDE }));
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: grid.url });
});
after(() => closeGrid({ grid, browser }));

const keyRow = (page, name) => page.locator('table.keys tbody tr', { has: page.locator('th', { hasText: name }) });
const shownSecret = (page) => page.locator('.secret-once code.secret');

/** The API's refusal of `DELETE /v1/secrets/{id}` (nothing is revoked by it). */
async function refusal(secret, id) {
  const answer = await call(grid, secret, `/v1/secrets/${id}`, { method: 'DELETE', raw: true });
  return { status: answer.status, body: await answer.json() };
}

test('keyboard only: sign in to a session, make a key and copy it, revoke it, the last key is refused, rotate', async () => {
  const { page } = browser;
  await page.goto(`${grid.url}/#/signin`);
  await page.locator('h1#page-title').waitFor();
  await tabTo(page, (f) => f.name === 'secret', 'the secret field');
  await page.keyboard.type(grid.apiKey);
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/jobs$/);
  const session = await page.evaluate(() => sessionStorage.getItem('idlegrid.secret'));
  assert.match(session, /^igs_/, 'the tab keeps a session');
  assert.equal(await page.evaluate((key) => Object.values(sessionStorage).some((v) => v.includes(key)), grid.apiKey), false,
    'the key itself is not kept');

  // To the Keys page through the nav, backwards from the page's heading.
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'page-title');
  await tabTo(page, (f) => f.href === '#/keys', 'the Keys link', { back: true });
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/keys$/);
  await keyRow(page, 'first key').waitFor();
  assert.deepEqual(await unlabelledControls(page), []);
  // This tab's session is listed, marked, and has no Rotate button (sessions are not rotated).
  const current = page.locator('table.keys tbody tr.current');
  assert.equal(await current.count(), 1);
  assert.match(await current.locator('th').textContent(), /^dashboard \(Chrome on Linux\) this session$/);
  assert.equal(await current.getAttribute('data-kind'), 'session');
  assert.equal(await current.locator('code').textContent(), `${session.slice(0, 10)}…`);
  assert.equal(await current.getByRole('button', { name: /^Rotate/ }).count(), 0);

  // Make a key: its secret is shown once, focus on it, Copy by keyboard.
  await tabTo(page, (f) => f.name === 'key-name', 'the name of a new key');
  await page.keyboard.type('laptop');
  await page.keyboard.press('Enter');
  await shownSecret(page).waitFor();
  await page.waitForFunction(() => document.activeElement && document.activeElement.closest('.secret-once'));
  assert.match(await page.locator('.secret-once').textContent(), /Keep it now: this API key is shown only this once/);
  const laptop = (await shownSecret(page).textContent()).trim();
  assert.match(laptop, /^igk_/);
  assert.equal((await call(grid, laptop, '/v1/me')).kind, 'customer', 'the new key works');
  await tabTo(page, (f) => f.text === 'Copy', 'the Copy button');
  await page.keyboard.press('Enter');
  await page.locator('.secret-once .copy-said', { hasText: 'Copied.' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), laptop);
  await keyRow(page, 'laptop').waitFor();
  await screenshot(page, 'keys', { docs: 'wide' });

  // Revoke it: Escape keeps it, the dialog's Revoke revokes it.
  await tabTo(page, (f) => f.label === 'Revoke “laptop”', 'Revoke “laptop”');
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.equal((await focused(page)).text, 'Cancel', 'the cautious button has focus');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.equal((await focused(page)).label, 'Revoke “laptop”', 'focus is back on the button');
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await page.keyboard.press('Tab');
  assert.equal((await focused(page)).text, 'Revoke');
  await page.keyboard.press('Enter');
  await keyRow(page, 'laptop').waitFor({ state: 'detached' });
  assert.equal((await call(grid, laptop, '/v1/me', { raw: true })).status, 401, 'the revoked key is refused at once');
  assert.match(await page.locator('#status').textContent(), /Revoked “laptop”/);

  // The account's last key: the server refuses, and the page says why.
  const { secrets } = await call(grid, grid.apiKey, '/v1/secrets');
  const first = secrets.find((s) => s.name === 'first key');
  const refused = await refusal(grid.apiKey, first.id);
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, 'last_key');
  await tabTo(page, (f) => f.label === 'Revoke “first key”', 'Revoke “first key”');
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.equal((await alert.textContent()).trim(), `“first key” was not revoked: ${refused.body.error.message}`);
  assert.equal((await call(grid, grid.apiKey, '/v1/me')).kind, 'customer', 'the last key still works');

  // Rotate a key: the new secret is shown once, the old one is refused.
  await tabTo(page, (f) => f.name === 'key-name', 'the name of a new key', { back: true });
  await page.keyboard.type('build server');
  await page.keyboard.press('Enter');
  await keyRow(page, 'build server').waitFor();
  const before = (await shownSecret(page).textContent()).trim();
  await tabTo(page, (f) => f.label === 'Rotate “build server”', 'Rotate “build server”');
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.locator('.secret-once h2', { hasText: 'The new secret of “build server”' }).waitFor();
  const after = (await shownSecret(page).textContent()).trim();
  assert.notEqual(after, before);
  assert.equal((await call(grid, before, '/v1/me', { raw: true })).status, 401, 'the old secret is refused');
  assert.equal((await call(grid, after, '/v1/me')).kind, 'customer', 'the new secret works');

  await assertNoSidewaysScroll(page, '#/keys at 1366');
  await page.setViewportSize(PHONE);
  await page.reload();
  await keyRow(page, 'build server').waitFor();
  await assertNoSidewaysScroll(page, '#/keys at 390');
  await screenshot(page, 'keys-phone', { docs: 'phone' });
  await page.setViewportSize(WIDE);
  assert.deepEqual(browser.errors, []);
});

test('owners and operators have a Keys page too, named after their kind of key', async () => {
  for (const [secret, kind, noun] of [[grid.enrollmentToken, 'owner', 'enrollment token'], [grid.operatorKey, 'operator', 'operator key']]) {
    const page = await browser.context.newPage();
    await signIn(page, grid, secret);
    await page.locator('#nav a[href="#/keys"]').click();
    await page.locator('table.keys tbody tr').first().waitFor();
    assert.match(await page.locator('#who').textContent(), new RegExp(kind));
    assert.equal(await page.getByRole('button', { name: `Make an ${noun}` }).count(), 1, `${kind}: make an ${noun}`);
    assert.ok(await page.locator('table.keys td[data-label="Kind"]', { hasText: noun }).count() >= 1, `${kind}: its keys are ${noun}s`);
    await page.setViewportSize(PHONE);
    await assertNoSidewaysScroll(page, `${kind} #/keys at 390`);
    await page.close();
  }
  assert.deepEqual(browser.errors, []);
});

test('a session revoked elsewhere signs the page out and the page says so; signing in again comes back', async () => {
  const page = await browser.context.newPage();
  const session = await signIn(page, grid, grid.apiKey);
  await page.locator('#nav a[href="#/billing"]').click();
  await page.locator('#rate').waitFor();
  // Revoked from the account's keys (another browser's Keys page, or the API).
  const { secrets } = await call(grid, grid.apiKey, '/v1/secrets');
  const mine = secrets.find((s) => s.kind === 'session' && session.startsWith(s.prefix));
  await call(grid, grid.apiKey, `/v1/secrets/${mine.id}`, { method: 'DELETE' });
  // The page's next request is refused: it goes to the sign-in page, which says why.
  await page.locator('#nav a[href="#/keys"]').click();
  await page.waitForURL(/#\/signin$/);
  assert.match(await page.locator('#signed-out-reason').textContent(), /^Your session has ended: it was revoked, it expired, or its account was deleted\. Sign in again\.$/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('idlegrid.secret')), null, 'the ended session is forgotten');
  assert.equal(await page.locator('#sign-out').count(), 0);
  await page.getByLabel('Secret', { exact: true }).fill(grid.apiKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/#\/keys$/);
  await page.close();

  // A customer deleted by the operator: its open dashboard is signed out the same way.
  const made = await call(grid, grid.operatorKey, '/v1/admin/customers', { method: 'POST', body: { name: 'short-lived' } });
  const doomed = await browser.context.newPage();
  await signIn(doomed, grid, made.api_key);
  await call(grid, grid.operatorKey, `/v1/admin/customers/${made.customer.id}`, { method: 'DELETE' });
  await doomed.locator('#nav a[href="#/billing"]').click();
  await doomed.waitForURL(/#\/signin$/);
  assert.match(await doomed.locator('#signed-out-reason').textContent(), /^Your session has ended/);
  await doomed.close();
  assert.deepEqual(browser.errors, []);
});

test('sign-up is offered only where the grid takes it', async () => {
  const page = await browser.context.newPage();
  const options = page.waitForResponse((r) => r.url().endsWith('/v1/signup'));
  await page.goto(`${grid.url}/#/signin`);
  assert.deepEqual(await (await options).json(), { ...(await call(grid, grid.apiKey, '/v1/signup')), customers: false, owners: false });
  assert.equal(await page.locator('a[href="#/signup"]').isVisible(), false, 'no sign-up link on a grid that takes none');
  await page.goto(`${grid.url}/#/signup`);
  await page.locator('#signup-closed').waitFor();
  assert.match(await page.locator('#signup-closed').textContent(), /does not take sign-ups/);
  await page.setViewportSize(PHONE);
  await assertNoSidewaysScroll(page, '#/signup at 390');
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('sign-up: the open kinds, a name, the key shown once, then Continue signs in', async () => {
  const open = await startGrid({ workers: 0, serveArgs: ['--signup', 'owners'] });
  const page = await browser.context.newPage();
  try {
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: open.url });
    await page.goto(`${open.url}/#/signin`);
    const link = page.getByRole('link', { name: 'Sign up' });
    await link.waitFor();
    await link.click();
    await page.waitForURL(/#\/signup$/);
    // Only owners may sign up here: one kind offered, and chosen.
    assert.deepEqual(await page.locator('input[name="kind"]').evaluateAll((all) => all.map((r) => [r.value, r.checked])), [['owner', true]]);
    assert.deepEqual(await unlabelledControls(page), []);
    // A name already taken: the server's reason, at the name.
    await page.getByLabel('Name', { exact: true }).fill('default');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('alert').waitFor();
    assert.match(await page.getByRole('alert').textContent(), /already an account named/);
    assert.equal(await page.getByLabel('Name', { exact: true }).getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Name', { exact: true }).fill('new owner');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await shownSecret(page).waitFor();
    const token = (await shownSecret(page).textContent()).trim();
    assert.match(token, /^ige_/);
    assert.match(await page.locator('.secret-once').textContent(), /Keep it now: this enrollment token is shown only this once/);
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.locator('.secret-once .copy-said', { hasText: 'Copied.' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
    await page.setViewportSize(PHONE);
    await assertNoSidewaysScroll(page, 'the new key at 390');
    await page.setViewportSize(WIDE);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(/#\/devices$/);
    assert.match(await page.locator('#who').textContent(), /new owner \(owner\)/);
    assert.match(await page.evaluate(() => sessionStorage.getItem('idlegrid.secret')), /^igs_/);
    assert.equal((await call(open, token, '/v1/me')).name, 'new owner');
  } finally {
    await page.close();
    await open.stop();
  }
  assert.deepEqual(browser.errors, []);
});
