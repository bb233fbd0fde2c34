// A job's logs on its page (ui/joblogs.js), from a python-map job whose script writes to stderr
// on a native worker:
// 1. The Logs section asks for nothing until opened; opened, it shows each log under its header
//    (the step; for a task its chunk from 1, device and outcome; the time), each line after its
//    level's word, warnings and errors marked apart; the level select filters them (warning:
//    no info line left); what the script wrote is text (markup makes no element, control
//    characters are escaped), and a long line wraps inside its box on a phone.
// 2. Load more brings the next page, in order, until there is none.
// 3. Opened on a job not yet run, the section loads again as the job changes state (not on
//    its progress), and on Refresh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertNoSidewaysScroll, call, closeGrid, openGrid, PHONE, screenshot, sha256, signIn, submitPythonJob, UPPER_SCRIPT,
  waitFor, waitForFinalState, WIDE,
} from './helpers.mjs';
import { shown } from '../ui/text.js';

let grid;
let browser;
/** The job of the first test, completed. */
let job;

before(async () => ({ grid, browser } = await openGrid({ workers: 1, slots: 2 })));
after(() => closeGrid({ grid, browser }));

const MARKUP = '<img src=x onerror=window.pwned=1><b>bold</b>';
const LONG = 'y'.repeat(400);

/** Writes an INFO line always, a WARNING for each line with "odd" in it, a line of markup and
 * a terminal escape, and one long word, to stderr, and in its third chunk an ERROR line too;
 * upper-cases its chunk. */
const SCRIPT = `import os, sys
chunk = int(os.environ["IDLEGRID_CHUNK_INDEX"])
print(f"INFO: chunk {chunk} starts", file=sys.stderr)
name = os.listdir("input")[0]
with open(os.path.join("input", name)) as src:
    for line in src:
        if "odd" in line:
            print("WARNING: odd line", line.strip(), file=sys.stderr)
print("INFO: markup ${MARKUP} \\x1b[31mred", file=sys.stderr)
print("INFO: ${LONG}", file=sys.stderr)
if chunk == 2:
    print("ERROR: the last chunk", file=sys.stderr)
${UPPER_SCRIPT}`;

/** 6 lines, 2 a chunk: chunks 1 and 3 (indexes 0 and 2) have an odd line, chunk 2 none. */
const INPUT = ['even a', 'odd b', 'even c', 'even d', 'even e', 'odd f'].map((l) => `${l}\n`).join('');

/** The job's logs through the API (the customer's key), at `level`. */
const apiLogs = (jobId, level = 'info') => call(grid, grid.apiKey, `/v1/jobs/${jobId}/logs?level=${level}`).then((a) => a.logs);

/** Waits until the job's logs through the API have the partition's, every task's and the
 * assembler's (a task's is kept just after its report is answered). */
async function waitForLogs(jobId, tasks) {
  return waitFor(async () => {
    const logs = await apiLogs(jobId);
    const steps = logs.map((l) => l.step);
    return steps.includes('assemble') && steps.filter((s) => s === 'task').length === tasks && logs;
  }, { timeout: 20_000, message: async () => `logs ${JSON.stringify(await apiLogs(jobId).catch((e) => e.message))}\n${grid.logs()}` });
}

/** What the page's Logs section shows: per log its step, header text and lines. */
function shownLogs(page) {
  return page.locator('#job-logs .log-entry').evaluateAll((els) => els.map((el) => ({
    step: el.dataset.step,
    head: el.querySelector('.log-head').textContent,
    lines: [...el.querySelectorAll('.log-line')].map((li) => ({
      level: li.dataset.level, word: li.querySelector('.log-level').textContent, text: li.querySelector('.log-text').textContent,
    })),
  })));
}

/** Requests the page makes for the job's logs. */
function countLogRequests(page, jobId) {
  const seen = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === `/v1/jobs/${jobId}/logs`) seen.push(r.url()); });
  return seen;
}

test('the Logs section: headers, lines by level, the level select, text as text, on a phone too', async () => {
  const { page } = browser;
  job = await submitPythonJob(grid, { script: SCRIPT, input: INPUT, chunkLines: 2 });
  const logs = await waitForLogs(job.id, 3);
  assert.equal(logs[0].step, 'partition', 'the partition\'s log first');
  assert.equal(logs.at(-1).step, 'assemble', 'the assembler\'s last');

  await signIn(page, grid, grid.apiKey);
  const requests = countLogRequests(page, job.id);
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  assert.equal(await waitForFinalState(page, grid, job.id), 'completed');
  const section = page.locator('#job-logs');
  const summary = section.locator('summary');
  await summary.waitFor();
  assert.equal(await section.evaluate((d) => d.open), false, 'closed at first');
  assert.deepEqual(requests, [], 'no logs asked for before the section is opened');
  await summary.click();
  const entries = section.locator('.log-entry');
  await waitFor(async () => (await entries.count()) === 5, { timeout: 10_000, message: async () => `shown: ${await section.textContent()}` });
  assert.equal(requests.length, 1);
  assert.match(requests[0], /level=info/, 'info by default');
  assert.equal(await page.getByLabel('Level').inputValue(), 'info');

  const all = await shownLogs(page);
  assert.deepEqual(all.map((l) => l.step), ['partition', 'task', 'task', 'task', 'assemble']);
  assert.match(all[0].head, /^Partition/);
  assert.match(all[0].lines[0].text, /^INFO: cut into 3 chunks/);
  assert.match(all[4].head, /^Assemble/);
  const { devices } = await call(grid, grid.enrollmentToken, '/v1/owner/devices');
  const device = devices[0].id;
  // A task's header: its chunk counted from 1 (of the job's 3), the device, the outcome, the time.
  const tasks = all.filter((l) => l.step === 'task');
  const byChunk = Object.fromEntries(tasks.map((l) => [l.head.match(/chunk (\d) of 3/)[1], l]));
  assert.deepEqual(Object.keys(byChunk).sort(), ['1', '2', '3'], `headers ${JSON.stringify(tasks.map((l) => l.head))}`);
  for (const [n, log] of Object.entries(byChunk)) {
    assert.match(log.head, new RegExp(`^Task · chunk ${n} of 3 · device ${device} · completed · \\S`), log.head);
    assert.equal(log.lines[0].text, `INFO: chunk ${n - 1} starts`);
  }
  assert.deepEqual(byChunk[3].lines.at(-1), { level: 'error', word: 'error', text: 'ERROR: the last chunk' });
  const first = byChunk[1].lines;
  // Each line after its level's word; the warning marked apart from the info lines.
  assert.deepEqual(first.map((l) => [l.level, l.word]), [['info', 'info'], ['warning', 'warning'], ['info', 'info'], ['info', 'info']]);
  assert.equal(first[1].text, 'WARNING: odd line odd b');
  assert.equal(byChunk[2].lines.filter((l) => l.level === 'warning').length, 0);
  const warningLine = section.locator('.log-line[data-level="warning"]').first();
  const infoLine = section.locator('.log-line[data-level="info"]').first();
  const look = (l) => l.evaluate((el) => ({ bg: getComputedStyle(el).backgroundColor, bar: getComputedStyle(el).borderLeftColor, weight: getComputedStyle(el.querySelector('.log-level')).fontWeight }));
  const [warnLook, infoLook] = [await look(warningLine), await look(infoLine)];
  assert.notEqual(warnLook.bg, infoLook.bg, 'a warning is tinted');
  assert.notEqual(warnLook.bar, infoLook.bar, 'a warning has a bar');
  assert.ok(Number(warnLook.weight) > Number(infoLook.weight), 'a warning\'s level word is bold');

  // The script's markup and terminal escape are text: no element made, nothing run, the escape shown.
  assert.equal(first[2].text, shown(`INFO: markup ${MARKUP} \x1b[31mred`));
  assert.ok(first[2].text.includes('\\x1b[31m'));
  assert.equal(await section.locator('img, b').count(), 0, 'no markup became elements');
  assert.equal(await page.evaluate(() => window.pwned), undefined, 'nothing ran');

  // On a phone: the long line wraps inside its box; nothing scrolls sideways.
  await page.setViewportSize(PHONE);
  await assertNoSidewaysScroll(page, 'the job page with its logs on a phone');
  const longText = section.locator('.log-text', { hasText: LONG }).first();
  const box = await longText.evaluate((el) => {
    const lines = el.closest('.log-lines');
    return { height: el.getBoundingClientRect().height, lineHeight: parseFloat(getComputedStyle(el).lineHeight), sideways: lines.scrollWidth > lines.clientWidth };
  });
  assert.ok(box.height > 3 * box.lineHeight, `the long line wraps: ${JSON.stringify(box)}`);
  assert.equal(box.sideways, false, 'the lines\' box does not scroll sideways');
  await section.scrollIntoViewIfNeeded();
  await screenshot(page, 'job-logs-phone');
  await page.setViewportSize(WIDE);
  await assertNoSidewaysScroll(page, 'the job page with its logs');
  await screenshot(page, 'job-logs');

  // Warnings and errors: only the tasks that wrote a warning, and none of their info lines.
  await page.getByLabel('Level').selectOption('warning');
  await waitFor(async () => (await entries.count()) === 2, { timeout: 10_000, message: async () => `shown: ${await section.textContent()}` });
  assert.match(requests.at(-1), /level=warning/);
  const warnings = Object.fromEntries((await shownLogs(page)).map((l) => [l.head.match(/chunk (\d)/)[1], l.lines]));
  assert.deepEqual(Object.keys(warnings).sort(), ['1', '3']);
  assert.deepEqual(warnings[1].map((l) => [l.level, l.word, l.text]), [['warning', 'warning', 'WARNING: odd line odd b']]);
  assert.deepEqual(warnings[3].map((l) => [l.level, l.word, l.text]), [['warning', 'warning', 'WARNING: odd line odd f'], ['error', 'error', 'ERROR: the last chunk']]);
  assert.equal(await section.locator('.log-line[data-level="info"]').count(), 0, 'no info line left');
  assert.match(await section.locator('.logs-said').textContent(), /2 logs/);
  // An error is marked apart from a warning, by more than its word's colour too.
  const errorLook = await look(section.locator('.log-line[data-level="error"]').first());
  assert.notEqual(errorLook.bg, warnLook.bg);
  assert.notEqual(errorLook.bar, warnLook.bar);
  // Errors only: the third chunk's line.
  await page.getByLabel('Level').selectOption('error');
  await waitFor(async () => (await entries.count()) === 1, { timeout: 10_000, message: async () => `shown: ${await section.textContent()}` });
  assert.deepEqual((await shownLogs(page))[0].lines.map((l) => l.text), ['ERROR: the last chunk']);
  assert.match(await section.locator('.logs-said').textContent(), /^1 log \(errors only\)\.$/);
  assert.deepEqual(browser.errors, []);
});

test('Load more brings the next page of logs, in order, until there is none', async () => {
  const page = await browser.context.newPage();
  await signIn(page, grid, grid.apiKey);
  // Pages of 2 logs: the job's 5 take three.
  await page.route(`**/v1/jobs/${job.id}/logs?*`, (route) => {
    const url = new URL(route.request().url());
    url.searchParams.set('limit', '2');
    return route.continue({ url: url.href });
  });
  await page.goto(`${grid.url}/#/jobs/${job.id}`);
  const section = page.locator('#job-logs');
  await section.locator('summary').click();
  const entries = section.locator('.log-entry');
  const more = page.getByRole('button', { name: 'Load more' });
  await waitFor(async () => (await entries.count()) === 2, { timeout: 10_000, message: async () => `shown: ${await section.textContent()}` });
  assert.ok(await more.isVisible(), 'more to load');
  await more.click();
  await waitFor(async () => (await entries.count()) === 4, { timeout: 10_000, message: async () => `shown: ${await section.textContent()}` });
  // The keyboard goes on at the first log the button brought.
  assert.equal(await page.evaluate(() => document.activeElement.closest('.log-entry') === document.querySelectorAll('#job-logs .log-entry')[2]), true);
  await more.click();
  await waitFor(async () => (await entries.count()) === 5 && !(await more.isVisible()), { timeout: 10_000, message: async () => `shown: ${await section.textContent()}` });
  const ids = await entries.evaluateAll((els) => els.map((el) => el.dataset.id));
  assert.deepEqual(ids, (await apiLogs(job.id)).map((l) => l.id), 'every log once, oldest first');
  assert.deepEqual((await shownLogs(page)).map((l) => l.step), ['partition', 'task', 'task', 'task', 'assemble']);
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test('opened before the job runs, the section loads again as the job changes state, and on Refresh', async () => {
  const { page } = browser;
  const created = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST', body: { app: 'python-map', script: SCRIPT, chunk_lines: 2, params: {} },
  });
  await signIn(page, grid, grid.apiKey);
  const requests = countLogRequests(page, created.id);
  await page.goto(`${grid.url}/#/jobs/${created.id}`);
  const section = page.locator('#job-logs');
  await section.locator('summary').click();
  const said = section.locator('.logs-said');
  await waitFor(async () => /No logs/.test(await said.textContent()), { timeout: 10_000, message: async () => `says: ${await said.textContent()}` });
  assert.equal(await page.getByLabel('Level').inputValue(), 'info');
  assert.equal(requests.length, 1);

  const bytes = Buffer.from(INPUT);
  await call(grid, grid.apiKey, `/v1/jobs/${created.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${created.id}/run`, { method: 'POST' });
  // Completed, the assembler's log shows without a click (written before the job completes).
  const steps = () => section.locator('.log-entry').evaluateAll((els) => els.map((el) => el.dataset.step));
  await waitFor(async () => (await steps()).includes('assemble'), { timeout: 60_000, message: async () => `shown: ${await section.textContent()}\n${grid.logs()}` });
  assert.equal(await waitForFinalState(page, grid, created.id), 'completed');
  assert.equal((await steps())[0], 'partition');
  // Once per change of state (created → … → completed), not on every event of the job.
  assert.ok(requests.length >= 2 && requests.length <= 7, `${requests.length} requests`);

  // Refresh asks again, and shows every task's log once the API has them.
  await waitForLogs(created.id, 3);
  const before = requests.length;
  await page.getByRole('button', { name: 'Refresh' }).click();
  await waitFor(async () => (await steps()).filter((s) => s === 'task').length === 3, { timeout: 10_000, message: async () => `shown: ${await section.textContent()}` });
  assert.equal(requests.length, before + 1);
  assert.deepEqual(browser.errors, []);
});
