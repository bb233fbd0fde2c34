// 1. Sign-in: a wrong secret shows the server's own error; the customer signs in and out.
// 8. API reference: reachable without signing in, lists /v1/jobs and shows a schema.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call, closeGrid, openGrid, screenshot } from './helpers.mjs';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 1 })));
after(() => closeGrid({ grid, browser }));

test('a wrong secret shows the server message; the customer signs in and out', async () => {
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
  assert.equal(await page.evaluate(() => sessionStorage.getItem('idlegrid.secret')), grid.apiKey);
  const nav = await page.locator('#nav').textContent();
  assert.match(nav, /Jobs/);
  assert.match(nav, /New job/);
  assert.doesNotMatch(nav, /Devices|Grid/);
  assert.equal(await page.locator('h1').textContent(), 'Jobs');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'page-title');

  await page.locator('#sign-out').click();
  await page.waitForURL(/#\/signin$/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('idlegrid.secret')), null);
  assert.deepEqual(browser.errors, []);
});

test('the API reference lists /v1/jobs and shows schemas, without signing in', async () => {
  const { page } = browser;
  const doc = await (await fetch(`${grid.url}/openapi.json`)).json();
  await page.goto(`${grid.url}/#/api`);
  const jobsPost = page.locator('article.op[data-path="/v1/jobs"][data-method="post"]');
  await jobsPost.waitFor();
  assert.match(await jobsPost.locator('h3').textContent(), /POST\s+\/v1\/jobs/);
  // Every operation of the document is shown.
  let operations = 0;
  for (const item of Object.values(doc.paths)) {
    operations += ['get', 'put', 'post', 'delete', 'patch'].filter((m) => item[m]).length;
  }
  assert.equal(await page.locator('article.op').count(), operations);
  await screenshot(page, 'api-reference');
  // The request body's $ref is resolved: CreateJob's fields are shown inline.
  const bodyFields = await jobsPost.locator('table.fields td:first-child').allTextContents();
  assert.ok(bodyFields.includes('app') && bodyFields.includes('preferences'), `fields: ${bodyFields}`);
  // The schema list has CreateJob with the description of its `app` field.
  const schema = page.locator('section.schema[data-schema="CreateJob"]');
  const appRow = schema.locator('table.fields tr', { hasText: /^app/ }).first();
  const description = doc.components.schemas.CreateJob.properties.app.description;
  assert.ok(description, 'the document describes CreateJob.app');
  assert.ok((await appRow.textContent()).includes(description.slice(0, 20)));
  assert.equal(await page.locator('section.schema').count(), Object.keys(doc.components.schemas).length);
  // A schema link moves focus to that schema.
  await jobsPost.locator('a.ref', { hasText: 'CreateJob' }).first().click();
  await page.waitForURL(/#\/api\/schemas\/CreateJob$/);
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'schema-CreateJob');
  assert.deepEqual(browser.errors, []);
});
