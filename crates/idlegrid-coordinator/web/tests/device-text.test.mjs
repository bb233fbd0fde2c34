// What devices send is data, never control: a failure reason full of terminal escape sequences
// and markup, and a device name with markup, show on the pages as the text they are — control
// characters escaped visibly, nothing turned into elements or run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call, closeGrid, openGrid, signIn, submitPythonJob, waitFor, waitForFinalState } from './helpers.mjs';
import { isHidden, shown } from '../ui/text.js';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 0 })));
after(() => closeGrid({ grid, browser }));

/** ESC, CSI, OSC (title, hyperlink), BEL, an 8-bit CSI, a bidirectional override, markup with
 * a script, and line breaks before a line that would pass for the page's own. */
const ATTACK = 'boom\x1b[2J\x1b]0;pwned\x07\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\\u009b31m'
  + '\u202egnp.exe <img src=x onerror="window.pwned=1"><b>bold</b>\r\nThe job completed.';

const CAPABILITIES = { cores: 1, memory_mb: 4096, os: 'linux', arch: 'x86_64', python: '3.11', benchmark: 100, slots: 1 };

/** Registers a device named `name` of the grid's owner; returns its token. */
async function register(name) {
  const registered = await call(grid, grid.enrollmentToken, '/v1/workers/register', {
    method: 'POST', body: { name, capabilities: CAPABILITIES },
  });
  return registered.token;
}

function hasHidden(text) {
  return [...text].some((ch) => isHidden(ch.codePointAt(0)));
}

test('the shown text is the rule the CLI follows', () => {
  assert.equal(shown('a\x1b[2J\r\n\t\u009b\u202ez'), 'a\\x1b[2J\\r\\n\\t\\u{9b}\\u{202e}z');
  assert.equal(shown('plain — «text» 🙂'), 'plain — «text» 🙂');
});

test('a failure reason full of escape sequences and markup shows as text', async () => {
  const { page } = browser;
  const token = await register('forger');
  const job = await submitPythonJob(grid, { script: 'print(1)\n', input: 'x\n', preferences: { max_attempts: 1 } });
  const grant = await call(grid, token, '/v1/leases', { method: 'POST', body: { max_tasks: 1, wait_ms: 10_000 } });
  assert.equal(grant.leases.length, 1);
  const [lease] = grant.leases;
  await call(grid, token, '/v1/leases/report', {
    method: 'POST',
    body: { reports: [{ lease_id: lease.lease_id, task_id: lease.task_id, outcome: { type: 'failed', reason: ATTACK } }] },
  });
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  assert.equal(await waitForFinalState(page, grid, job.id), 'failed');
  const failed = await call(grid, grid.apiKey, `/v1/jobs/${job.id}`);
  assert.ok(failed.error.endsWith(ATTACK), 'the API gives the reason as it was stored');
  const text = page.locator('.job-error .job-error-text');
  await text.waitFor();
  assert.equal(await text.textContent(), shown(failed.error));
  assert.ok((await text.textContent()).includes('boom\\x1b[2J\\x1b]0;pwned\\x07'));
  assert.equal(await page.locator('.job-error img, .job-error b').count(), 0, 'no markup became elements');
  assert.equal(await page.evaluate(() => window.pwned), undefined, 'nothing ran');
  assert.equal(hasHidden(await page.locator('main').textContent()), false, 'no control character reached the page');
  assert.deepEqual(browser.errors, []);
});

test('a device name with markup shows as text, and one with escapes is refused', async () => {
  const { page } = browser;
  await register('<img src=x onerror="window.pwned=2">laptop');
  const refused = await call(grid, grid.enrollmentToken, '/v1/workers/register', {
    method: 'POST', body: { name: 'laptop\x1b[2J\x1b]0;pwned\x07', capabilities: CAPABILITIES },
  }).catch((e) => e);
  assert.equal(refused.status, 422);
  assert.equal(refused.body.error.code, 'invalid_name');
  await signIn(page, grid, grid.enrollmentToken);
  await page.goto(`${grid.url}/#/devices`);
  const named = page.locator('table.devices tbody th', { hasText: 'laptop' });
  await waitFor(async () => (await named.count()) === 1, { message: async () => await page.locator('main').textContent() });
  assert.match(await named.textContent(), /^<img src=x onerror="window.pwned=2">laptop/);
  assert.equal(await page.locator('table.devices img').count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.deepEqual(browser.errors, []);
});
