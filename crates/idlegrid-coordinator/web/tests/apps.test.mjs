// Published apps on the dashboard. Apps are published through the API: the example line-stats
// (examples/apps/line-stats, read from the repository) at 1.0.0 and 1.1.0, and a hostile one
// whose description is markup and a very long word.
// 1. The Apps page lists the built-in and published apps (latest version, publisher, date,
//    description), a manifest's words as text: no element and no dialog from them, and a long
//    word wraps; at 360 px, without sideways scrolling.
// 2. An app's versions, newest first, each with its description and bundle and a "New job"
//    that opens the form with that version chosen, an older one too; an unknown app says so.
// 3. The new-job form, opened from the Apps page: each app's choice says its version and who
//    published it; a published app gets its parameters' fields (a checkbox for line-stats'
//    `lower`; app-params.test.mjs tests them) and lines per chunk, never the script; the
//    job is sent as `line-stats@1.1.0`, runs on a native worker, and its output is what the app
//    computes for each line (worked out here). python-map keeps its script and fields.
// 4. An app cut into the files of an archive (the `files` fan-out, published in that test):
//    the form asks for files per chunk, not lines (a sweep's app for parameter sets per chunk,
//    a byte ranges' app for neither), refuses a value that is no whole number, says its price
//    comes with the upload, and runs a tar of 3 files, one a chunk; the `sum` fan-in adds up
//    the chunks' counts of their files.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertNoSidewaysScroll, call, closeGrid, exampleBundle, openGrid, screenshot, signIn, unlabelledControls, waitFor, waitForFinalState, waitForJobPage,
} from './helpers.mjs';

const NARROW = { width: 360, height: 740 };
const WIDE = { width: 1366, height: 900 };
const LONG_WORD = 'Pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(6);
const HOSTILE_DESCRIPTION = `<img src=x onerror=alert(1)> ${LONG_WORD}`;
const NEWER_DESCRIPTION = 'For each line of a text: its number of words, its number of characters and its longest word, tab-separated. Takes {"lower": true}.';

let grid;
let browser;
/** What `POST /v1/apps` answered, by `name@version`. */
const published = {};
/** Every dialog a page opened (an `alert` from a manifest would be one). */
const dialogs = [];


/** Publishes `bundle`; returns the HTTP status, and keeps the answer. */
async function publish(bundle) {
  const response = await call(grid, grid.apiKey, '/v1/apps', { method: 'POST', body: bundle, raw: true });
  const body = await response.json();
  assert.ok(response.ok, `publishing ${bundle.manifest.name} ${bundle.manifest.version}: ${response.status} ${JSON.stringify(body)}`);
  published[`${body.manifest.name}@${body.manifest.version}`] = body;
  return response.status;
}

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 1, slots: 2, viewport: WIDE }));
  browser.context.on('page', (p) => p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); }));
  browser.page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  assert.equal(await publish(exampleBundle('line-stats')), 201);
  assert.equal(await publish(exampleBundle('line-stats')), 200, 'the same version again, as it is, is fine');
  assert.equal(await publish(exampleBundle('line-stats', { version: '1.1.0', description: NEWER_DESCRIPTION })), 201);
  assert.equal(await publish({
    manifest: { ...exampleBundle('line-stats').manifest, name: 'hostile-notes', version: '0.1.0', description: HOSTILE_DESCRIPTION },
    files: { 'task.py': 'import shutil, os\nshutil.copy(os.path.join("input", os.listdir("input")[0]), "output/out.txt")\n' },
  }), 201);
});
after(() => closeGrid({ grid, browser }));

/** What line-stats writes for one line: words, characters (code points, as Python counts them), longest word. */
function describeLine(line, lower) {
  const words = line.split(/\s+/).filter(Boolean);
  let longest = words.reduce((best, w) => ([...w].length > [...best].length ? w : best), '');
  if (lower) longest = longest.toLowerCase();
  return `${words.length}\t${[...line].length}\t${longest}`;
}

/**
 * A ustar archive of `files` ({ name: text }), written here rather than by a tool: regular
 * files, fixed owner, mode and time.
 */
function tarOf(files) {
  const blocks = [];
  for (const [name, text] of Object.entries(files)) {
    const data = Buffer.from(text);
    const header = Buffer.alloc(512);
    const put = (offset, value) => header.write(value, offset, 'ascii');
    put(0, name);
    put(100, '0000644\0');
    put(108, '0000000\0');
    put(116, '0000000\0');
    put(124, `${data.length.toString(8).padStart(11, '0')}\0`);
    put(136, '00000000000\0');
    put(148, '        ');
    put(156, '0');
    put(257, 'ustar\0');
    put(263, '00');
    const sum = header.reduce((a, b) => a + b, 0);
    put(148, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

/** How many images the page's main part has: none of these pages shows one, so any is made of a manifest's markup. */
function images(page) {
  return page.locator('main img').count();
}

test('the Apps page lists built-in and published apps, a manifest\'s words as text, at 1366 and 360 px', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  await page.locator('#nav a[href="#/apps"]').click();
  await page.waitForURL(/#\/apps$/);
  assert.equal(await page.locator('#page-title').textContent(), 'Apps');
  assert.equal(await page.title(), 'Apps · idlegrid');
  assert.equal(await page.locator('#nav a[aria-current="page"]').textContent(), 'Apps');
  const items = page.locator('li.app');
  const listed = await call(grid, grid.apiKey, '/v1/apps');
  await waitFor(async () => (await items.count()) === listed.length, { timeout: 10_000, message: async () => `${await items.count()} apps listed` });
  // One of each app, the latest version of a published one.
  assert.deepEqual(await items.evaluateAll((els) => els.map((el) => el.dataset.app)),
    listed.map((a) => a.manifest.name));
  assert.deepEqual([...listed.map((a) => a.manifest.name)].sort(), ['hostile-notes', 'line-stats', 'python-map', 'video-transcode']);

  const item = (name) => page.locator(`li.app[data-app="${name}"]`);
  const stats = item('line-stats');
  assert.equal(await stats.locator('h2').textContent(), 'line-stats');
  assert.equal(await stats.locator('.app-version').textContent(), '1.1.0');
  assert.equal(await stats.locator('.app-publisher').textContent(), 'yours');
  assert.equal(await stats.locator('.app-published time').getAttribute('datetime'), published['line-stats@1.1.0'].published_at);
  assert.equal(await stats.locator('.app-description').textContent(), NEWER_DESCRIPTION);
  assert.equal(await stats.getByRole('link', { name: 'New job with line-stats' }).getAttribute('href'), '#/jobs/new?app=line-stats%401.1.0');
  assert.equal(await stats.getByRole('link', { name: 'Versions of line-stats' }).getAttribute('href'), '#/apps/line-stats');
  const python = item('python-map');
  assert.equal(await python.locator('.app-version').textContent(), '1.0.0');
  assert.equal(await python.locator('.app-publisher').textContent(), 'built in');
  assert.equal(await python.locator('.app-published').count(), 0, 'a built-in app has no publishing date');
  assert.equal(await python.getByRole('link', { name: 'New job with python-map' }).getAttribute('href'), '#/jobs/new?app=python-map');
  assert.equal(await item('video-transcode').locator('.app-publisher').textContent(), 'built in');

  // The hostile description is text: no image made of it, no dialog, and its long word wraps.
  const hostile = item('hostile-notes').locator('.app-description');
  assert.equal(await hostile.textContent(), HOSTILE_DESCRIPTION);
  assert.equal(await images(page), 0);
  // How to publish one, in words: nothing links out of the dashboard.
  assert.match(await page.locator('.publish-how').textContent(), /run idlegrid app push DIR\./);
  assert.deepEqual(await page.locator('main a').evaluateAll((as) => as.map((a) => a.getAttribute('href')).filter((href) => !href.startsWith('#/'))), []);
  assert.deepEqual(await unlabelledControls(page), []);
  await assertNoSidewaysScroll(page, 'the Apps page at 1366 px');
  await screenshot(page, 'apps');

  await page.setViewportSize(NARROW);
  await assertNoSidewaysScroll(page, 'the Apps page at 360 px');
  const box = await hostile.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth, lines: Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)) }));
  assert.ok(box.scroll <= box.client, `the long word stays in its card: ${JSON.stringify(box)}`);
  assert.ok(box.lines >= 5, `the long word wraps over several lines: ${JSON.stringify(box)}`);
  await screenshot(page, 'apps-phone');
  await page.setViewportSize(WIDE);
  assert.deepEqual(dialogs, []);
  assert.deepEqual(browser.errors, []);
});

test('an app\'s versions, newest first, each opening the new-job form with that version chosen', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/apps`);
  await page.getByRole('link', { name: 'Versions of line-stats' }).click();
  await page.waitForURL(/#\/apps\/line-stats$/);
  assert.equal(await page.locator('#page-title').textContent(), 'App line-stats');
  assert.equal(await page.locator('#nav a[aria-current="page"]').textContent(), 'Apps');
  const rows = page.locator('table.app-versions tbody tr');
  await rows.first().waitFor({ timeout: 10_000 });
  const versions = await call(grid, grid.apiKey, '/v1/apps/line-stats/versions');
  assert.deepEqual(versions.map((v) => v.manifest.version), ['1.0.0', '1.1.0'], 'the API lists them oldest first');
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.version)), ['1.1.0', '1.0.0'], 'the page, newest first');
  const row = (version) => page.locator(`table.app-versions tr[data-version="${version}"]`);
  assert.equal(await row('1.1.0').locator('th').textContent(), '1.1.0 (latest)');
  assert.equal(await row('1.0.0').locator('th').textContent(), '1.0.0');
  for (const v of versions) {
    const r = row(v.manifest.version);
    assert.equal(await r.locator('.app-description').textContent(), v.manifest.description);
    assert.equal(await r.locator('time').getAttribute('datetime'), v.published_at);
    assert.equal(await r.locator('code').textContent(), `${v.bundle_sha256.slice(0, 12)}…`);
    assert.equal(await r.getByRole('link', { name: `New job with line-stats ${v.manifest.version}` }).getAttribute('href'),
      `#/jobs/new?app=line-stats%40${v.manifest.version}`);
  }
  assert.equal(await page.locator('main .app-description').first().textContent(), NEWER_DESCRIPTION, 'the latest version\'s description on top');
  await screenshot(page, 'app-versions');
  await page.setViewportSize(NARROW);
  await assertNoSidewaysScroll(page, 'the versions of line-stats at 360 px');
  await screenshot(page, 'app-versions-phone');
  await page.setViewportSize(WIDE);

  // An older version's "New job": the form has it chosen, though /v1/apps lists the latest only.
  await row('1.0.0').getByRole('link', { name: 'New job with line-stats 1.0.0' }).click();
  await page.waitForURL(/#\/jobs\/new\?app=line-stats%401\.0\.0$/);
  const app = page.getByLabel('App', { exact: true });
  await waitFor(async () => (await app.inputValue().catch(() => '')) === 'line-stats@1.0.0', { timeout: 10_000, message: 'line-stats 1.0.0 is chosen' });
  assert.equal(await app.locator('option:checked').textContent(), 'line-stats 1.0.0 (yours)');
  assert.equal(await page.locator('.app-description').textContent(), versions[0].manifest.description);

  // The hostile app's versions: its description as text, wrapped at 360 px.
  await page.goto(`${grid.url}/#/apps/hostile-notes`);
  await page.locator('table.app-versions tbody tr').first().waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('table.app-versions .app-description').textContent(), HOSTILE_DESCRIPTION);
  assert.equal(await images(page), 0);
  await page.setViewportSize(NARROW);
  await assertNoSidewaysScroll(page, 'the versions of the hostile app at 360 px');
  await page.setViewportSize(WIDE);

  // An app there is none of (or one of another account's, kept private): said in words.
  await page.goto(`${grid.url}/#/apps/no-such-app`);
  const alert = page.locator('main [role="alert"]');
  await alert.waitFor({ timeout: 10_000 });
  assert.match(await alert.textContent(), /^The app’s versions could not be loaded: there is no app "no-such-app" you may see$/);

  // The form opened for a built-in app names it without a version; for an unknown one, says so.
  await page.goto(`${grid.url}/#/jobs/new?app=video-transcode`);
  await waitFor(async () => (await app.inputValue().catch(() => '')) === 'video-transcode', { timeout: 10_000, message: 'video-transcode is chosen' });
  assert.equal(await page.getByLabel('Video codec').isVisible(), true);
  await page.goto(`${grid.url}/#/jobs/new?app=no-such-app`);
  await page.locator('main .unknown-app').waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('main .unknown-app').textContent(), 'There is no app “no-such-app” you may run: choose one below.');
  assert.equal(await app.inputValue(), 'python-map', 'the usual choice instead');
  assert.deepEqual(dialogs, []);
  assert.deepEqual(browser.errors, []);
});

test('the new-job form runs line-stats from the Apps page on a worker; the output is what the app computes', async () => {
  const { page } = browser;
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/apps`);
  await page.getByRole('link', { name: 'New job with line-stats' }).click();
  await page.waitForURL(/#\/jobs\/new\?app=line-stats%401\.1\.0$/);
  const app = page.getByLabel('App', { exact: true });
  await waitFor(async () => (await app.inputValue().catch(() => '')) === 'line-stats@1.1.0', { timeout: 10_000, message: 'line-stats 1.1.0 is chosen' });
  assert.equal(await page.locator('#nav a[aria-current="page"]').textContent(), 'New job');

  // Each choice says the app's version and who published it; a published one is named with its version.
  const listed = await call(grid, grid.apiKey, '/v1/apps');
  const who = (a) => (a.publisher === undefined ? 'built in' : 'yours');
  assert.deepEqual(await app.locator('option').evaluateAll((os) => os.map((o) => [o.value, o.textContent])),
    listed.map((a) => [a.publisher === undefined ? a.manifest.name : `${a.manifest.name}@${a.manifest.version}`,
      `${a.manifest.name} ${a.manifest.version} (${who(a)})`]));

  // A published app: its description, what it is, parameters and lines per chunk; no script.
  const script = page.getByLabel('Task script (Python)');
  const chunkLines = page.getByLabel('Lines per chunk');
  const params = page.getByLabel('Parameters (JSON object)');
  const lower = page.getByRole('group', { name: 'Parameters' }).getByLabel('lower', { exact: true });
  const about = page.getByRole('group', { name: 'Published app' });
  assert.equal(await page.locator('.app-description').textContent(), NEWER_DESCRIPTION);
  assert.equal(await script.isVisible(), false);
  assert.equal(await about.isVisible(), true);
  assert.match(await about.locator('.published-about').textContent(),
    /^line-stats 1\.1\.0, yours, published .+\. It brings its own task script, run on each chunk of the input’s lines; the output is the chunks’ outputs joined in order\. Its versions\.$/);
  assert.equal(await about.getByRole('link', { name: 'Its versions' }).getAttribute('href'), '#/apps/line-stats');
  assert.equal(await about.locator('input[name="chunk_lines"]').count(), 1, 'lines per chunk are the app\'s');
  // Its parameters by their fields, the JSON textarea behind "Edit as JSON".
  assert.equal(await lower.isVisible(), true);
  assert.equal(await params.isVisible(), false);
  // python-map keeps its script, with lines per chunk in the script's box; and back again.
  await app.selectOption('python-map');
  assert.equal(await script.isVisible(), true);
  assert.equal(await about.isVisible(), false);
  assert.equal(await page.getByRole('group', { name: 'Task script' }).locator('input[name="chunk_lines"]').count(), 1);
  await script.fill('this script is python-map\'s, never line-stats\'s\n');
  await app.selectOption('line-stats@1.1.0');
  assert.equal(await script.isVisible(), false);
  assert.equal(await chunkLines.isVisible(), true);

  // The hostile app's description, as text, wraps in the form at 360 px.
  await app.selectOption('hostile-notes@0.1.0');
  assert.equal(await page.locator('.app-description').textContent(), HOSTILE_DESCRIPTION);
  assert.equal(await images(page), 0);
  await page.setViewportSize(NARROW);
  await assertNoSidewaysScroll(page, 'the new-job form with the hostile app at 360 px');
  await app.selectOption('line-stats@1.1.0');
  await assertNoSidewaysScroll(page, 'the new-job form with line-stats at 360 px');
  await screenshot(page, 'new-job-published-app-phone');
  await page.setViewportSize(WIDE);

  // A small text, typed: lines of words, an empty one, letters outside ASCII, a tab.
  const lines = ['The quick brown fox', '', '  Résumé   naïve  café  ', 'Supercalifragilistic expialidocious words',
    'tabs\there and  there', 'ONE'];
  const input = `${lines.join('\n')}\n`;
  await page.getByLabel('Or type the input here').fill(input);
  await chunkLines.fill('2');
  await lower.check();
  // Priced as the job will be cut: 6 lines, 2 a chunk.
  const chosen = page.locator('#estimate tr.chosen td').last();
  await waitFor(async () => (await chosen.textContent({ timeout: 1000 })) === '3', {
    timeout: 10_000, message: async () => `the estimate: ${await page.locator('#estimate').textContent()}`,
  });
  assert.deepEqual(await unlabelledControls(page), []);
  await screenshot(page, 'new-job-published-app');

  const request = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs');
  await page.getByRole('button', { name: 'Create and run' }).click();
  const body = (await request).postDataJSON();
  assert.deepEqual(body, { app: 'line-stats@1.1.0', preferences: { tier: 'standard' }, params: { lower: true }, chunk_lines: 2 }, 'no script');
  const jobId = await waitForJobPage(page);
  assert.equal(await waitForFinalState(page, grid, jobId), 'completed', grid.logs());
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.equal(job.app, 'line-stats');
  assert.equal(job.app_version, '1.1.0');
  assert.equal(job.chunks.total, 3);
  const output = await call(grid, grid.apiKey, `/v1/jobs/${jobId}/output`, { raw: true });
  assert.equal(output.status, 200);
  const expected = lines.map((line) => `${describeLine(line, true)}\n`).join('');
  assert.equal(await output.text(), expected);
  // Worked out apart from the app, the figures are those of these lines.
  assert.equal(expected.split('\n')[2], '3\t24\trésumé');
  assert.deepEqual(dialogs, []);
  assert.deepEqual(browser.errors, []);
});

test('an app cut into an archive\'s files: files per chunk in the form, checked, sent and run', async () => {
  const { page } = browser;
  const manifest = (name, description, steps) => ({
    name, version: '1.0.0', description, entrypoint: 'task.py', input_name: 'docs.tar', deterministic: true,
    requirements: { python: '3.8', memory_mb: 128 }, parameters: { type: 'object', properties: {}, additionalProperties: false }, ...steps,
  });
  // A sweep's and a byte ranges' app, only to be chosen in the form.
  const copy = { 'task.py': 'import shutil, os\nshutil.copy(os.path.join("input", os.listdir("input")[0]), "output/out")\n' };
  assert.equal(await publish({ manifest: manifest('seed-sweep', 'One task per seed.', { partitioner: 'sweep', validator: 'numbers', assembler: 'stats' }), files: copy }), 201);
  assert.equal(await publish({ manifest: manifest('byte-copy', 'Copies byte ranges.', { partitioner: 'bytes', validator: 'integrity', assembler: 'concat' }), files: copy }), 201);
  // Counts the files of its chunk's tar; the grid's `sum` adds up the counts.
  assert.equal(await publish({
    manifest: manifest('file-count', 'Counts the files of a tar or zip archive.', { partitioner: 'files', validator: 'numbers', assembler: 'sum' }),
    files: {
      'task.py': 'import json, tarfile\n'
        + 'with tarfile.open("input/docs.tar") as docs:\n'
        + '    n = len([m for m in docs if m.isfile()])\n'
        + 'with open("output/n.json", "w") as out:\n'
        + '    json.dump({"files": n}, out)\n',
    },
  }), 201);
  await signIn(page, grid, grid.apiKey);
  await page.goto(`${grid.url}/#/jobs/new`);
  const app = page.getByLabel('App', { exact: true });
  await app.locator('option[value="file-count@1.0.0"]').waitFor({ state: 'attached', timeout: 10_000 });
  await app.selectOption('file-count@1.0.0');

  // Files per chunk, in the app's box, with its default said; no lines per chunk, no typed input.
  const about = page.getByRole('group', { name: 'Published app' });
  const chunkItems = page.getByLabel('Files per chunk');
  assert.equal(await chunkItems.isVisible(), true);
  assert.equal(await about.locator('input[name="chunk_items"]').count(), 1);
  assert.match(await page.locator(`#${await chunkItems.getAttribute('id')}-hint`).textContent(), /^Default: sized from the speed and the grid\./);
  assert.equal(await page.getByLabel('Lines per chunk').isVisible(), false);
  assert.equal(await page.getByLabel('Parameter sets per chunk').count(), 0);
  assert.equal(await page.getByLabel('Or type the input here').isVisible(), false, 'an archive is not typed');
  assert.match(await about.locator('.published-about').textContent(),
    /^file-count 1\.0\.0, yours, published .+\. It brings its own task script, run on each chunk of the files of the input archive \(zip, tar or tar\.gz\), each chunk a tar of them; the output is one JSON object, the chunks’ numbers added up key by key\. Its versions\.$/);
  // Priced once the input is uploaded: said as such, not as an error.
  const estimate = page.locator('#estimate');
  await estimate.locator('.upload-priced').waitFor({ timeout: 10_000 });
  assert.match(await estimate.textContent(), /^This app’s input is priced by its files, counted once it is uploaded/);

  // A sweep's app asks for parameter sets per chunk (its input may be typed); a byte ranges' app
  // for neither lines nor items.
  await app.selectOption('seed-sweep@1.0.0');
  const sets = page.getByLabel('Parameter sets per chunk');
  assert.equal(await sets.isVisible(), true);
  assert.equal(await page.locator(`#${await sets.getAttribute('id')}-hint`).textContent(), 'Default: one parameter set per chunk.');
  assert.equal(await page.getByLabel('Lines per chunk').isVisible(), false);
  assert.equal(await page.getByLabel('Or type the input here').isVisible(), true);
  await waitFor(async () => /priced by its parameter sets/.test(await estimate.textContent()), { timeout: 5000, message: async () => `the estimate: ${await estimate.textContent()}` });
  await app.selectOption('byte-copy@1.0.0');
  assert.equal(await page.locator('input[name="chunk_items"]').isVisible(), false);
  assert.equal(await page.locator('input[name="chunk_lines"]').isVisible(), false);
  await app.selectOption('file-count@1.0.0');
  assert.equal(await chunkItems.isVisible(), true);

  // Three files, one a chunk.
  const tar = tarOf({ 'a.txt': 'one\n', 'notes/b.txt': 'two words\n', 'c.md': '# three\n' });
  await page.getByLabel('Input file').setInputFiles({ name: 'docs.tar', mimeType: 'application/x-tar', buffer: tar });
  const posts = [];
  const listener = (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs') posts.push(r.url()); };
  page.on('request', listener);
  const submit = page.getByRole('button', { name: 'Create and run' });
  const alert = page.locator('form [role="alert"]');
  for (const value of ['1.5', '0']) {
    await chunkItems.fill(value);
    await submit.click();
    await waitFor(async () => (await alert.textContent({ timeout: 1000 })) === 'Files per chunk must be a whole number of at least 1.', {
      timeout: 5000, message: async () => `the alert for ${value} says: ${await alert.textContent().catch(() => '(none)')}`,
    });
    assert.equal(await chunkItems.getAttribute('aria-invalid'), 'true');
    assert.equal(await chunkItems.evaluate((el) => el === document.activeElement), true, 'the field to fix is focused');
    assert.equal(await estimate.textContent(), 'No estimate: Files per chunk must be a whole number of at least 1.');
  }
  assert.deepEqual(posts, [], 'nothing is sent while files per chunk is wrong');

  // A whole number is sent with the estimate (which prices the archive once uploaded) and the job.
  const priced = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/jobs/estimate' && r.request().postDataJSON().chunk_items === 1);
  await chunkItems.fill('1');
  const estimated = await priced;
  assert.equal(estimated.status(), 422);
  assert.equal((await estimated.json()).error.code, 'invalid_input');
  await estimate.locator('.upload-priced').waitFor({ timeout: 5000 });
  assert.equal(await estimate.locator('[role="alert"]').count(), 0);
  assert.deepEqual(await unlabelledControls(page), []);
  await page.setViewportSize(NARROW);
  await assertNoSidewaysScroll(page, 'the new-job form with an app cut into files at 360 px');
  await screenshot(page, 'new-job-files-app-phone');
  await page.setViewportSize(WIDE);
  await screenshot(page, 'new-job-files-app');

  const request = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/v1/jobs');
  await submit.click();
  assert.deepEqual((await request).postDataJSON(),
    { app: 'file-count@1.0.0', name: 'docs.tar', preferences: { tier: 'standard' }, params: {}, chunk_items: 1 });
  const jobId = await waitForJobPage(page);
  page.off('request', listener);
  assert.equal(posts.length, 1);
  assert.equal(await waitForFinalState(page, grid, jobId), 'completed', grid.logs());
  const job = await call(grid, grid.apiKey, `/v1/jobs/${jobId}`);
  assert.equal(job.chunks.total, 3, 'one chunk a file');
  const output = await call(grid, grid.apiKey, `/v1/jobs/${jobId}/output`, { raw: true });
  assert.equal(output.status, 200);
  assert.deepEqual(JSON.parse(await output.text()), { files: 3 });
  assert.deepEqual(dialogs, []);
  assert.deepEqual(browser.errors, []);
});
