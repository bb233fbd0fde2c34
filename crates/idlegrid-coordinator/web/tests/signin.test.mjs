// 1. Sign-in: a wrong secret shows the server's own error; the customer signs in (the tab
//    keeps a dashboard session, not the key) and out (the session is revoked).
// 8. API reference: reachable without signing in, lists /v1/jobs and shows a schema.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call, closeGrid, openGrid, screenshot } from './helpers.mjs';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 1 })));
after(() => closeGrid({ grid, browser }));

test('a wrong secret shows the server message; the customer signs in to a session and out', async () => {
  const { page } = browser;
  const wrong = 'definitely-not-a-secret';
  // What the server itself says about this secret.
  const answer = await call(grid, wrong, '/v1/me', { raw: true });
  assert.ok(answer.status >= 400, `the server accepted a wrong secret (${answer.status})`);
  let body = await answer.json();
  if (body.error && body.error.code === 'no_such_endpoint') {
    body = await (await call(grid, wrong, '/v1/apps', { raw: true })).json();
  }
  const serverMessage = body.error.message;
  assert.ok(serverMessage, 'the error has a message');

  await page.goto(`${grid.url}/`);
  await page.waitForURL(/#\/signin$/);
  await page.getByLabel('Secret', { exact: true }).fill(wrong);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.equal((await alert.textContent()).trim(), serverMessage);
  await screenshot(page, 'sign-in-refused');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('idlegrid.secret')), null, 'a wrong secret is not kept');

  await page.getByLabel('Secret', { exact: true }).fill(grid.apiKey);
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/jobs$/);
  await page.locator('#sign-out').waitFor();
  assert.match(await page.locator('#who').textContent(), /customer/);
  // The tab keeps a session made from the key, never the key.
  const kept = await page.evaluate(() => sessionStorage.getItem('idlegrid.secret'));
  assert.match(kept, /^igs_/);
  assert.equal(await page.evaluate((key) => Object.values(sessionStorage).some((v) => v.includes(key)), grid.apiKey), false);
  const { secrets } = await call(grid, grid.apiKey, '/v1/secrets');
  const made = secrets.find((s) => s.kind === 'session' && kept.startsWith(s.prefix));
  assert.ok(made, `the session is listed: ${JSON.stringify(secrets)}`);
  assert.match(made.name, /^dashboard \(Chrome on Linux\)$/);
  assert.ok(made.expires_at, 'a session expires');
  const nav = await page.locator('#nav').textContent();
  assert.match(nav, /Jobs/);
  assert.match(nav, /New job/);
  assert.doesNotMatch(nav, /Devices|Grid/);
  assert.equal(await page.locator('h1').textContent(), 'Jobs');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'page-title');

  await page.locator('#sign-out').click();
  await page.waitForURL(/#\/signin$/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('idlegrid.secret')), null);
  // Signing out revoked the session on the coordinator.
  assert.equal((await call(grid, kept, '/v1/me', { raw: true })).status, 401);
  assert.match(await page.locator('#signed-out-reason').textContent(), /^Signed out\.$/);
  assert.deepEqual(browser.errors, []);
});

test('the API reference lists /v1/jobs and shows schemas, without signing in', async () => {
  const { page } = browser;
  const doc = await (await fetch(`${grid.url}/openapi.json`)).json();
  await page.goto(`${grid.url}/#/api`);
  const jobsPost = page.locator('details.op[data-path="/v1/jobs"][data-method="post"]');
  await jobsPost.waitFor();
  assert.match(await jobsPost.locator('h3').textContent(), /POST\s+\/v1\/jobs/);
  // Endpoints are closed until opened.
  await jobsPost.locator('summary').click();
  // Every operation of the document is shown.
  let operations = 0;
  for (const item of Object.values(doc.paths)) {
    operations += ['get', 'put', 'post', 'delete', 'patch'].filter((m) => item[m]).length;
  }
  assert.equal(await page.locator('details.op').count(), operations);
  await screenshot(page, 'api-reference');
  // The request body's $ref is resolved: CreateJob's fields are shown inline.
  const bodyFields = await jobsPost.locator('table.fields td:first-child').allTextContents();
  assert.ok(bodyFields.includes('app') && bodyFields.includes('preferences'), `fields: ${bodyFields}`);
  // The schema list has CreateJob with the description of its `app` field.
  const schema = page.locator('details.schema[data-schema="CreateJob"]');
  const appRow = schema.locator('table.fields tr', { hasText: /^app/ }).first();
  const description = doc.components.schemas.CreateJob.properties.app.description;
  assert.ok(description, 'the document describes CreateJob.app');
  assert.ok((await appRow.textContent()).includes(description.slice(0, 20)));
  assert.equal(await page.locator('details.schema').count(), Object.keys(doc.components.schemas).length);
  // A schema link moves focus to that schema.
  await jobsPost.locator('a.ref', { hasText: 'CreateJob' }).first().click();
  await page.waitForURL(/#\/api\/schemas\/CreateJob$/);
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'schema-CreateJob');
  assert.deepEqual(browser.errors, []);
});
