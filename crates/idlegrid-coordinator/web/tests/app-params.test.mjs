// A published app's parameters on the new-job form: a field for each property of the JSON
// Schema its manifest gives as `parameters` (paramform.js), instead of a JSON textarea.
// 1. An app published here whose schema has an integer with a range, an enum, a boolean, a
//    number, a required array of strings, a property named with markup and one with a very
//    long name: each shows as its field (number, select, checkbox, text), labelled with its
//    name and hinted with its description, "(required)" in words; the names and descriptions
//    are text (no element made of them, no dialog), and wrap at 360 px. A value under the
//    minimum and the missing required array are refused with a message naming the field,
//    which gets the focus, before anything is sent (the estimate says so too). Filled, the
//    estimate is asked for with the very params the job is sent with: only the fields filled
//    (the empty ones left out), numbers as numbers, the array split at its commas. "Edit as
//    JSON" shows the same params in the textarea; the coordinator's 422 for params written
//    there that do not fit is shown; JSON the fields cannot hold stays JSON, and JSON they can
//    goes back into them. The job runs on a native worker, its script writes the params it
//    got, and those are the ones filled.
// 2. Schemas the fields cannot say (a nested object, `oneOf`, a `$ref`, more than 50
//    properties) are written as JSON, without the toggle, and priced as written; a 422 for a
//    check the page leaves to the coordinator (a pattern with a repeated group) is shown and
//    marks its field; an app without parameters says so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import {
  assertNoSidewaysScroll, call, closeGrid, openGrid, screenshot, signIn, unlabelledControls, waitFor, waitForFinalState, waitForJobPage,
} from './helpers.mjs';

const NARROW = { width: 360, height: 740 };
const WIDE = { width: 1366, height: 900 };
const ODD = '<img src=x onerror=alert(1)>';
const ODD_DESCRIPTION = '<b>Not bold</b>: a publisher’s name and words, shown as text.';
const LONG = 'a_very_long_parameter_name_without_any_space_'.repeat(8);

let grid;
let browser;
/** Every dialog a page opened (an `alert` from a manifest would be one). */
const dialogs = [];

/** A published app's manifest: cut by lines, joined in order, with `parameters`. */
function manifest(name, parameters, description = 'Writes the parameters it was given.') {
  return {
    name, version: '1.0.0', description, entrypoint: 'task.py', input_name: 'chunk.txt',
    partitioner: 'lines', validator: 'integrity', assembler: 'concat', deterministic: true,
    requirements: { python: '3.8', memory_mb: 128 }, ...(parameters ? { parameters } : {}),
  };
}

/** Writes the parameters the task got, as JSON, keys sorted. */
const ECHO = { 'task.py': 'import json, os\n'
  + 'params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))\n'
  + 'with open("output/params.json", "w", encoding="utf-8") as out:\n'
  + '    out.write(json.dumps(params, sort_keys=True) + "\\n")\n' };

const PROBE_SCHEMA = {
  type: 'object',
  properties: {
    max_side: { type: 'integer', minimum: 16, maximum: 4096, description: 'Longest side of a thumbnail, in pixels (default 256).' },
    format: { enum: ['jpeg', 'png'], description: 'The thumbnails’ format (default jpeg).' },
    lower: { type: 'boolean', description: 'Write the longest word in lower case.' },
    ratio: { type: 'number', exclusiveMinimum: 0, maximum: 1, description: 'A share, left empty here.' },
    columns: { type: 'array', items: { type: 'string' }, minItems: 1, description: 'The columns to add up, by their names in the header.' },
    [ODD]: { type: 'string', maxLength: 40, description: ODD_DESCRIPTION },
    [LONG]: { type: 'string' },
  },
  required: ['columns'],
  additionalProperties: false,
};

async function publish(bundle) {
  const response = await call(grid, grid.apiKey, '/v1/apps', { method: 'POST', body: bundle, raw: true });
  const body = await response.json();
  assert.equal(response.status, 201, `publishing ${bundle.manifest.name}: ${response.status} ${JSON.stringify(body)}`);
}

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2, viewport: WIDE }));
  browser.context.on('page', (p) => p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); }));
  browser.page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await publish({ manifest: manifest('param-probe', PROBE_SCHEMA), files: ECHO });
});
after(() => closeGrid({ grid, browser }));

/** Opens the new-job form with `reference` (`name@version`) chosen. */
async function openForm(page, reference) {
  await page.goto(`${grid.url}/#/jobs/new?app=${encodeURIComponent(reference)}`);
  const app = page.getByLabel('App', { exact: true });
  await waitFor(async () => (await app.inputValue().catch(() => '')) === reference, { timeout: 10_000, message: `${reference} is chosen` });
}

/** The text of the hint a control is described by. */
async function hintOf(page, control) {
  return page.locator(`[id="${await control.getAttribute('aria-describedby')}"]`).textContent();
}

test('a published app\'s parameters as fields: labelled, checked, sent as filled, as JSON on demand, run', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  await openForm(page, 'param-probe@1.0.0');
  const box = page.getByRole('group', { name: 'Parameters' });
  const maxSide = box.getByLabel('max_side', { exact: true });
  const format = box.getByLabel('format', { exact: true });
  const lower = box.getByLabel('lower', { exact: true });
  const ratio = box.getByLabel('ratio', { exact: true });
  const columns = box.getByLabel('columns (required)', { exact: true });
  const odd = box.getByLabel(ODD, { exact: true });
  const long = box.getByLabel(LONG, { exact: true });
  const json = page.getByLabel('Parameters (JSON object)');
  const toggle = box.getByRole('button', { name: 'Edit as JSON' });

  // A field for each property of the kind its type says: the required one first, then the
  // others in the order the coordinator serves them.
  await maxSide.waitFor({ timeout: 10_000 });
  const kinds = {
    max_side: ['input', 'number'], format: ['select', 'select-one'], lower: ['input', 'checkbox'], ratio: ['input', 'number'],
    columns: ['input', 'text'], [ODD]: ['input', 'text'], [LONG]: ['input', 'text'],
  };
  const served = (await call(grid, grid.apiKey, '/v1/apps')).find((a) => a.manifest.name === 'param-probe').manifest.parameters;
  assert.deepEqual(served, PROBE_SCHEMA);
  const order = ['columns', ...Object.keys(served.properties).filter((n) => n !== 'columns')];
  assert.deepEqual(await box.locator('[data-param]').evaluateAll((els) => els.map((el) => [el.dataset.param, el.tagName.toLowerCase(), el.type])),
    order.map((n) => [n, ...kinds[n]]));
  assert.deepEqual([await maxSide.getAttribute('min'), await maxSide.getAttribute('max'), await maxSide.getAttribute('step')], ['16', '4096', '1']);
  assert.equal(await hintOf(page, maxSide), 'Longest side of a thumbnail, in pixels (default 256). A whole number from 16 to 4096.');
  assert.deepEqual(await format.locator('option').allTextContents(), ['Default', 'jpeg', 'png']);
  assert.equal(await hintOf(page, format), 'The thumbnails’ format (default jpeg).');
  assert.equal(await hintOf(page, lower), 'Write the longest word in lower case.');
  assert.equal(await ratio.getAttribute('step'), 'any');
  assert.match(await hintOf(page, ratio), /A number more than 0 and at most 1\.$/);
  assert.equal(await hintOf(page, columns), 'The columns to add up, by their names in the header. Values separated by commas, e.g. a, b, c.');
  // Required in words (and to assistive technology), not by colour; the others are not.
  assert.equal(await columns.getAttribute('aria-required'), 'true');
  assert.equal(await maxSide.getAttribute('aria-required'), null);
  assert.match(await box.locator('.param-intro').textContent(), /Leave a field empty for the app’s default\. Fields marked “required” must be filled in\./);
  // The publisher's markup is text: the label and hint say it, no element is made of it.
  assert.equal(await odd.getAttribute('maxlength'), '40');
  assert.equal(await page.locator(`label[for="${await odd.getAttribute('id')}"]`).textContent(), ODD);
  assert.equal(await hintOf(page, odd), `${ODD_DESCRIPTION} At most 40 characters.`);
  assert.equal(await page.locator('main img').count(), 0);
  assert.equal(await page.locator('main b').count(), 0);
  // The textarea waits behind the toggle.
  assert.equal(await json.isVisible(), false);
  assert.equal(await toggle.isVisible(), true);
  assert.deepEqual(await unlabelledControls(page), []);

  // At 360 px the long name wraps in its label: nothing scrolls sideways.
  await page.setViewportSize(NARROW);
  await assertNoSidewaysScroll(page, 'the parameters\' fields at 360 px');
  const label = page.locator(`label[for="${await long.getAttribute('id')}"]`);
  assert.ok(await label.evaluate((el) => el.scrollWidth <= el.clientWidth && el.getBoundingClientRect().height > 40), 'the long name wraps in its label');
  await screenshot(page, 'new-job-app-params-phone');
  await page.setViewportSize(WIDE);

  // Checked before anything is sent: the field named, marked and focused; the estimate says so.
  await page.getByLabel('Or type the input here').fill('one line\n');
  const posts = [];
  const listener = (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs') posts.push(r.postDataJSON()); };
  page.on('request', listener);
  const submit = page.getByRole('button', { name: 'Create and run' });
  const alert = page.locator('form [role="alert"]');
  const estimate = page.locator('#estimate');
  const refused = async (control, message) => {
    await submit.click();
    await waitFor(async () => (await alert.textContent({ timeout: 1000 })) === message, {
      timeout: 5000, message: async () => `the alert says: ${await alert.textContent().catch(() => '(none)')}`,
    });
    assert.equal(await control.getAttribute('aria-invalid'), 'true');
    assert.equal(await control.evaluate((el) => el === document.activeElement), true, 'the field to fix is focused');
    await waitFor(async () => (await estimate.textContent()) === `No estimate: ${message}`, {
      timeout: 5000, message: async () => `the estimate says: ${await estimate.textContent()}`,
    });
  };
  await maxSide.fill('5');
  await refused(columns, '“columns” is required: write its values, separated by commas.');
  await columns.fill(' price, tax ,, total ');
  await refused(maxSide, '“max_side” must be a whole number from 16 to 4096.');
  assert.deepEqual(posts, [], 'nothing is sent while a field is wrong');

  // Filled: priced with the params the job will have, empty ones left out.
  const filled = { max_side: 512, format: 'png', lower: true, columns: ['price', 'tax', 'total'], [ODD]: 'a value' };
  const priced = page.waitForRequest((r) => new URL(r.url()).pathname === '/v1/jobs/estimate' && isDeepStrictEqual(r.postDataJSON().params, filled));
  await format.selectOption('png');
  await lower.check();
  await odd.fill('a value');
  await maxSide.fill('512');
  await priced;
  await estimate.locator('table').waitFor({ timeout: 10_000 });

  // As JSON: the same params; back to the fields and the toggle says so.
  await toggle.click();
  const back = box.getByRole('button', { name: 'Use the fields' });
  assert.equal(await json.isVisible(), true);
  assert.equal(await maxSide.isVisible(), false);
  assert.deepEqual(JSON.parse(await json.inputValue()), filled);
  assert.equal(await back.evaluate((el) => el === document.activeElement), true, 'the focus stays on the toggle');
  // Written there, what the schema refuses is the coordinator's to say: its 422 is shown.
  await json.fill(JSON.stringify({ ...filled, max_side: 5 }));
  await submit.click();
  await waitFor(async () => /params\/max_side: 5 is less than the minimum of 16/.test(await alert.textContent({ timeout: 1000 })), {
    timeout: 10_000, message: async () => `the alert says: ${await alert.textContent().catch(() => '(none)')}`,
  });
  assert.equal(await json.getAttribute('aria-invalid'), 'true');
  assert.equal(posts.length, 1, 'sent, and refused');
  // What the fields cannot hold stays JSON, and why is said.
  await json.fill(JSON.stringify({ ...filled, colour: 'red' }));
  await back.click();
  assert.match(await alert.textContent(), /^The parameters cannot go back into the fields: “colour” is not one of the app’s parameters\./);
  assert.equal(await json.isVisible(), true);
  // What they can goes back into them.
  const sent = { ...filled, max_side: 1024, columns: ['price', 'total'] };
  await json.fill(JSON.stringify(sent));
  await back.click();
  await maxSide.waitFor();
  assert.equal(await json.isVisible(), false);
  assert.equal(await maxSide.inputValue(), '1024');
  assert.equal(await columns.inputValue(), 'price, total');
  assert.equal(await format.locator('option:checked').textContent(), 'png');
  assert.equal(await lower.isChecked(), true);
  assert.equal(await ratio.inputValue(), '');
  await screenshot(page, 'new-job-app-params');

  // Sent as filled, run, and the task got exactly those params.
  const request = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs');
  await submit.click();
  assert.deepEqual((await request).postDataJSON(), { app: 'param-probe@1.0.0', preferences: { tier: 'standard' }, params: sent });
  const jobId = await waitForJobPage(page);
  page.off('request', listener);
  assert.equal(posts.length, 2);
  assert.deepEqual((await call(grid, grid.apiKey, `/v1/jobs/${jobId}`)).params, sent);
  assert.equal(await waitForFinalState(page, grid, jobId), 'completed', grid.logs());
  const output = await call(grid, grid.apiKey, `/v1/jobs/${jobId}/output`, { raw: true });
  assert.equal(output.status, 200);
  assert.deepEqual(JSON.parse(await output.text()), sent);
  assert.equal(await page.locator('main img').count(), 0);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(browser.errors, []);
});

test('schemas the fields cannot say are written as JSON; a 422 the page did not foresee marks its field; an app without parameters says so', async () => {
  const { page } = browser;
  const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`p${i}`, { type: 'integer' }]));
  const apps = {
    'nested-params': { type: 'object', properties: { size: { type: 'object', properties: { w: { type: 'integer' } } } } },
    'one-of-params': { type: 'object', properties: { mode: { oneOf: [{ type: 'string' }, { type: 'integer' }] } } },
    'ref-params': { type: 'object', properties: { n: { $ref: '#/$defs/n' } }, $defs: { n: { type: 'integer' } } },
    'many-params': { type: 'object', properties: many, additionalProperties: false },
    'no-params': { type: 'object', properties: {}, additionalProperties: false },
    // A repeated group: a pattern the page leaves to the coordinator.
    'pattern-params': { type: 'object', properties: { code: { type: 'string', pattern: '^(ab)+$' } }, additionalProperties: false },
  };
  for (const [name, schema] of Object.entries(apps)) await publish({ manifest: manifest(name, schema), files: ECHO });
  await signIn(page, grid, grid.apiKey);
  const json = page.getByLabel('Parameters (JSON object)');
  const box = page.getByRole('group', { name: 'Parameters' });
  for (const name of ['nested-params', 'one-of-params', 'ref-params', 'many-params']) {
    await openForm(page, `${name}@1.0.0`);
    assert.equal(await json.isVisible(), true, `${name}: the textarea`);
    assert.equal(await box.locator('[data-param]').count(), 0, `${name}: no field`);
    assert.equal(await box.getByRole('button').count(), 0, `${name}: no toggle`);
  }
  // Written as JSON, the params are sent as written, and priced with them.
  await page.getByLabel('Or type the input here').fill('x\n');
  const priced = page.waitForRequest((r) => new URL(r.url()).pathname === '/v1/jobs/estimate' && isDeepStrictEqual(r.postDataJSON().params, { p3: 7 }));
  await json.fill('{"p3": 7}');
  await priced;

  // A field the page does not check all of: the coordinator's 422 is shown, the field marked.
  await openForm(page, 'pattern-params@1.0.0');
  const code = box.getByLabel('code', { exact: true });
  await code.fill('abc');
  await page.getByLabel('Or type the input here').fill('x\n');
  await page.getByRole('button', { name: 'Create and run' }).click();
  const alert = page.locator('form [role="alert"]');
  await waitFor(async () => /params\/code: "abc" does not match/.test(await alert.textContent({ timeout: 1000 })), {
    timeout: 10_000, message: async () => `the alert says: ${await alert.textContent().catch(() => '(none)')}`,
  });
  assert.equal(await code.getAttribute('aria-invalid'), 'true');
  assert.equal(await code.evaluate((el) => el === document.activeElement), true, 'the field refused is focused');

  await openForm(page, 'no-params@1.0.0');
  assert.equal(await box.locator('.param-intro').textContent(), 'This app takes no parameters.');
  assert.equal(await json.isVisible(), false);
  await box.getByRole('button', { name: 'Edit as JSON' }).click();
  assert.equal(await json.inputValue(), '{}');
  // python-map keeps its textarea, outside any parameters' box.
  await page.getByLabel('App', { exact: true }).selectOption('python-map');
  assert.equal(await json.isVisible(), true);
  assert.equal(await box.isVisible(), false);
  assert.deepEqual(await unlabelledControls(page), []);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(browser.errors, []);
});
