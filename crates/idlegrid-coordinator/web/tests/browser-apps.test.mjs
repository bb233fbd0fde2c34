// Published apps run on the browser worker alone: a grid with no native worker (`workers: 0`)
// and the /contribute page in headless Chromium as its only device. The example apps are read
// from the repository (examples/apps/…: manifest.json, and every other file as `files`) and
// published through `POST /v1/apps`, as `idlegrid app push` sends them.
// 1. word-count: a tar of 5 documents, 2 a chunk (3 chunks), then its own reduce step
//    (`reduce.py`, one more task whose lease names that script and `outputs.tar`) runs in the
//    page too; the output is exactly the counts worked out here, and the reduce's log line
//    ("INFO: 3 chunks, M distinct words") reaches the job's logs from the browser device.
// 2. monte-carlo-pi: a sweep of 2 sample sizes × 3 seeds, one task each, reduced by the grid's
//    `stats` fan-in: n is the number of seeds, the mean is near pi, and each mean is the one
//    CPython's random.Random gives for those seeds (Pyodide's Python is the same CPython).
// 3. On the dashboard (a second page of the same browser, signed in as the customer, while the
//    /contribute page keeps working): word-count's job page lists its 3 chunks and, apart, one
//    "Reduce step" (ui/chunks.js), and its Logs section heads the reduce's log "Reduce", with
//    its line (ui/joblogs.js); the New-job form says word-count's output is what its own reduce
//    script makes of the chunks' outputs (ui/newjob.js).
// 4. An app with a partition script of its own (`partition.py`: a tar of 2 files, the first
//    line of the input and the rest, in that order though named the other way round): the
//    New-job form says its own partition script cuts the input; a job of it runs in the browser
//    too (the partition step, then the 2 chunks, each copied), its output the two files' bytes
//    joined in the archive's order, and its job page lists a "Partition step" and 2 chunks.
//
// Placement: the page is linked with a code of the grid's first device owner (the enrollment
// token), whom a fresh grid makes part of its first customer's account (the API key's): the
// browser is the customer's own device. Each job asks for `placement: "own"` (a private fleet),
// which is also what a grid whose only owner is the customer's gives by default, said here
// so the test does not rest on that default. There a party is a device and replication is
// `none` unless the job asks for more, so the one browser finishes both jobs: on the open grid
// (`any`) the reduce step of word-count needs the same bytes from two owners
// (Replication::for_step), and monte-carlo-pi's manifest asks for fixed replication, 2 of 2;
// a grid with one device of one owner could never finish either. Each job's view says it is
// run as a private fleet, unreplicated.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { call, chunkReport, closeGrid, exampleBundle, linkBrowserWorker, openGrid, recentTasks, sha256, signIn, waitFor } from './helpers.mjs';

let grid;
let browser;
/** The browser's device, as its owner sees it. */
let device;
/** The word-count job the first test ran: its id and its number of distinct words. */
let wordCount;

/** The grid's devices: the browser alone, no native worker. */
async function devices() {
  return (await call(grid, grid.enrollmentToken, '/v1/owner/devices')).devices;
}

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 0 }));
  for (const name of ['word-count', 'monte-carlo-pi']) {
    const bundle = exampleBundle(name);
    const published = await call(grid, grid.apiKey, '/v1/apps', { method: 'POST', body: bundle });
    assert.equal(published.manifest.version, bundle.manifest.version);
  }
  await linkBrowserWorker(browser.page, grid);
  const all = await devices();
  assert.equal(all.length, 1, `the page is the grid's only device: ${JSON.stringify(all)}`);
  [device] = all;
  assert.equal(device.capabilities.runtime, 'browser');
});
after(() => closeGrid({ grid, browser }));

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

/**
 * Creates a job of `app` (`chunk_items`, on the customer's own devices), uploads `input` in one
 * PUT and runs it; returns the job as created.
 */
async function runJob(app, input, { chunkItems } = {}) {
  const job = await call(grid, grid.apiKey, '/v1/jobs', {
    method: 'POST',
    body: { app, params: {}, ...(chunkItems ? { chunk_items: chunkItems } : {}), preferences: { placement: 'own' } },
  });
  assert.equal(job.app, app);
  // Only the customer's own devices, each result taken as it comes: one device can finish it.
  assert.equal(job.preferences.placement, 'own');
  assert.equal(job.preferences.replication.mode, 'none', JSON.stringify(job.preferences));
  assert.equal(job.verification.basis, 'private_fleet', JSON.stringify(job.verification));
  const bytes = Buffer.from(input);
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/input`, {
    method: 'PUT', body: bytes, headers: { 'x-content-sha256': sha256(bytes), 'Content-Type': 'application/octet-stream' },
  });
  await call(grid, grid.apiKey, `/v1/jobs/${job.id}/run`, { method: 'POST' });
  return job;
}

/** Waits until job `id` ended; fails unless it completed. Returns it. */
async function waitForJob(id, timeout = 60_000) {
  const job = await waitFor(async () => {
    const j = await call(grid, grid.apiKey, `/v1/jobs/${id}`);
    return ['completed', 'failed', 'cancelled'].includes(j.state) && j;
  }, {
    timeout,
    interval: 250,
    message: async () => `job ${id} did not end\n${await chunkReport(grid, id)}\npage: ${(await recentTasks(browser.page)).join(' | ')}\n${grid.logs()}`,
  });
  assert.equal(job.state, 'completed', `job ${id}: ${job.error}\n${await chunkReport(grid, id)}\npage: ${(await recentTasks(browser.page)).join(' | ')}`);
  return job;
}

/** The job's output, as bytes. */
async function output(id) {
  const response = await call(grid, grid.apiKey, `/v1/jobs/${id}/output`, { raw: true });
  assert.equal(response.status, 200);
  return Buffer.from(await response.arrayBuffer());
}

/** The job's chunks (its tasks), in order. */
async function tasks(id) {
  return (await call(grid, grid.apiKey, `/v1/jobs/${id}/tasks`)).tasks;
}

/**
 * word-count's counts of `docs`, worked out apart from the app: a word is a run of ASCII
 * letters, digits and apostrophes of the lower-cased text, apostrophes trimmed from its ends
 * (a run of apostrophes alone is no word).
 */
function wordCounts(docs) {
  const counts = new Map();
  for (const text of Object.values(docs)) {
    for (const run of text.toLowerCase().match(/[a-z0-9']+/g) || []) {
      const word = run.replace(/^'+|'+$/g, '');
      if (word) counts.set(word, (counts.get(word) || 0) + 1);
    }
  }
  return new Map([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

test('word-count runs in the browser alone: its chunks and its own reduce step, the output exact', { timeout: 90_000 }, async () => {
  // Five documents (one in a folder): cases, digits, apostrophes inside and around words, letters
  // outside ASCII (which split words), punctuation, and words shared between documents.
  const docs = {
    'a.txt': 'The cat sat on the mat. The CAT ran!\n',
    'b.txt': "It's the dog's ball; 'twas the cat's, isn't it? ''quoted'' '' '\n",
    'notes/c.md': '# Café résumé\n\nNaïve words split at é: café, Résumé.\n',
    'd.txt': 'Route 66, 1999 and 2024: r2d2 met c3po on route 66.\n',
    'e.txt': 'the end. THE END! The-end, the_end\n',
  };
  const expected = wordCounts(docs);
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  // Python's json.dump(…, sort_keys=True): ", " and ": " between, keys in order.
  const expectedText = `{"counts": {${[...expected].map(([w, n]) => `"${w}": ${n}`).join(', ')}}, "distinct": ${expected.size}, "words": ${total}}`;
  // Worked out apart from the app, the rules are the ones said: a few of these counts.
  assert.equal(expected.get('the'), 9);
  assert.equal(expected.get('end'), 4);
  assert.equal(expected.get('cat'), 2);
  assert.equal(expected.get("cat's"), 1);
  assert.equal(expected.get("it's"), 1);
  assert.equal(expected.get('twas'), 1);
  assert.equal(expected.get('quoted'), 1);
  assert.equal(expected.get('caf'), 2);
  assert.equal(expected.get('66'), 2);
  assert.equal(expected.has("''"), false);

  // The leases the page is granted, as it reads them.
  const leases = [];
  const granted = async (r) => {
    if (new URL(r.url()).pathname !== '/v1/leases' || r.request().method() !== 'POST' || !r.ok()) return;
    leases.push(...((await r.json().catch(() => null))?.leases ?? []));
  };
  browser.page.on('response', granted);
  const started = Date.now();
  const job = await runJob('word-count', tarOf(docs), { chunkItems: 2 });
  const done = await waitForJob(job.id);
  console.log(`word-count: ${done.chunks.total} tasks in ${Date.now() - started} ms in the browser`);
  // 5 documents, 2 a chunk: 3 chunks, and the reduce task after them, each with one result.
  assert.equal(done.chunks.total, 4, JSON.stringify(done.chunks));
  assert.equal(done.chunks.done, 4);
  assert.equal(done.chunks.failed, 0);
  assert.equal(done.chunks.failed_attempts, 0, await chunkReport(grid, job.id));
  assert.equal(done.chunks.results, 4);
  // The chunks at indexes 0.., the reduce task numbered apart (from 2^40) and named by its step.
  const chunks = await tasks(job.id);
  assert.deepEqual(chunks.map((t) => [t.step ?? 'chunk', t.state]),
    [['chunk', 'done'], ['chunk', 'done'], ['chunk', 'done'], ['reduce', 'done']], JSON.stringify(chunks));
  assert.deepEqual(chunks.slice(0, 3).map((t) => t.index), [0, 1, 2]);
  assert.ok(chunks[3].index >= 2 ** 40, `the reduce task's index ${chunks[3].index}`);
  // The page was granted each task once: the chunks run the entrypoint on a tar of documents,
  // the reduce's lease names its script and its input, the tar of the chunks' outputs.
  browser.page.off('response', granted);
  const ofJob = leases.filter((l) => l.job_id === job.id).sort((a, b) => a.chunk_index - b.chunk_index);
  assert.deepEqual(ofJob.map((l) => [l.chunk_index, l.script ?? null, l.input_name]), [
    [0, null, 'docs.tar'], [1, null, 'docs.tar'], [2, null, 'docs.tar'], [chunks[3].index, 'reduce.py', 'outputs.tar'],
  ]);

  // The output is the reduce's: the counts of the whole archive, byte for byte.
  const bytes = await output(job.id);
  assert.equal(bytes.toString('utf8'), expectedText);
  assert.equal(done.output.sha256, sha256(bytes));
  const reduced = JSON.parse(bytes.toString('utf8'));
  assert.deepEqual(reduced, { counts: Object.fromEntries(expected), distinct: expected.size, words: total });

  // The reduce ran in the page: its stderr line is the reduce task's log, named by its step and
  // sent by the browser device (a task's log is kept just after its report).
  const deviceLogs = async () => (await call(grid, grid.apiKey, `/v1/jobs/${job.id}/logs?level=info`)).logs
    .filter((l) => l.device !== undefined && l.device !== null);
  const reduceLog = await waitFor(async () => (await deviceLogs()).find((l) => l.step === 'reduce'), {
    timeout: 10_000, message: async () => `the job's logs: ${JSON.stringify(await call(grid, grid.apiKey, `/v1/jobs/${job.id}/logs?level=debug`))}`,
  });
  assert.equal(reduceLog.device, device.id);
  assert.equal(reduceLog.outcome, 'completed');
  assert.equal(reduceLog.chunk ?? null, null, 'the reduce is no chunk');
  assert.deepEqual(reduceLog.lines, [{ level: 'info', text: `INFO: 3 chunks, ${expected.size} distinct words` }]);
  for (const log of await deviceLogs()) assert.equal(log.device, device.id, 'every task ran in the browser');
  wordCount = { id: job.id, distinct: expected.size, reduceIndex: chunks[3].index };

  // The page did the four tasks; the grid still has no other device.
  await waitFor(async () => (await recentTasks(browser.page)).filter((t) => t.startsWith(`Job ${job.id}, `) && /: done in /.test(t)).length === 4, {
    timeout: 10_000, message: async () => `the page's recent tasks: ${(await recentTasks(browser.page)).join(' | ')}`,
  });
  // It names the reduce as the step it is, not as a chunk.
  const named = (await recentTasks(browser.page)).filter((t) => t.startsWith(`Job ${job.id}, `));
  assert.equal(named.filter((t) => t.startsWith(`Job ${job.id}, reduce step (word-count): done in `)).length, 1, named.join(' | '));
  assert.equal(named.filter((t) => /, chunk [0-9]+ \(word-count\)/.test(t)).length, 3, named.join(' | '));
  const now = await devices();
  assert.deepEqual(now.map((d) => [d.id, d.capabilities.runtime]), [[device.id, 'browser']]);
  assert.ok(now[0].valid >= 4, `the browser's valid results: ${now[0].valid}`);
  assert.deepEqual(browser.errors, []);
});

/** What monte-carlo-pi's items estimate, worked out with CPython's random.Random: for each
 * number of samples, the estimates of seeds 0.. (the sweep's default first seed), in order. */
function cpythonEstimates(samples, seeds) {
  const code = `import json, random, sys
samples, seeds = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for n in samples:
    out[str(n)] = []
    for seed in range(seeds):
        rng = random.Random(seed)
        inside = 0
        for _ in range(n):
            x = rng.random()
            y = rng.random()
            inside += x * x + y * y <= 1.0
        out[str(n)].append(4.0 * inside / n)
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('python3', ['-c', code, JSON.stringify(samples), String(seeds)], { encoding: 'utf8' }));
}

test('monte-carlo-pi\'s sweep runs in the browser alone; the stats are those of every seed', { timeout: 90_000 }, async () => {
  const samples = [300, 2000];
  const seeds = 3;
  const started = Date.now();
  const job = await runJob('monte-carlo-pi', JSON.stringify({ grid: { samples }, seeds }));
  const done = await waitForJob(job.id);
  console.log(`monte-carlo-pi: ${done.chunks.total} tasks in ${Date.now() - started} ms in the browser`);
  // One task per parameter set and seed; no reduce task (a built-in fan-in).
  assert.equal(done.chunks.total, samples.length * seeds, JSON.stringify(done.chunks));
  assert.equal(done.chunks.done, samples.length * seeds);
  assert.equal(done.chunks.results, samples.length * seeds, 'each task ran once: not replicated');
  assert.equal(done.chunks.failed_attempts, 0, await chunkReport(grid, job.id));

  const { pi } = JSON.parse((await output(job.id)).toString('utf8'));
  assert.deepEqual(Object.keys(pi).sort(), samples.map(String).sort());
  const cpython = cpythonEstimates(samples, seeds);
  for (const n of samples) {
    const stats = pi[String(n)];
    assert.equal(stats.n, seeds, `${n} samples: ${JSON.stringify(stats)}`);
    assert.ok(Math.abs(stats.mean - 3.14159) < 0.5, `${n} samples: ${JSON.stringify(stats)}`);
    const estimates = cpython[String(n)];
    const mean = estimates.reduce((a, b) => a + b, 0) / estimates.length;
    assert.ok(Math.abs(stats.mean - mean) < 1e-9, `${n} samples: the browser's mean ${stats.mean}, CPython's ${mean}`);
    assert.ok(stats.ci95[0] <= stats.mean && stats.mean <= stats.ci95[1], `${n} samples: ${JSON.stringify(stats)}`);
  }
  const now = await devices();
  assert.deepEqual(now.map((d) => [d.id, d.capabilities.runtime]), [[device.id, 'browser']]);
  assert.deepEqual(browser.errors, []);
});

/** A second page of the browser, signed in to the dashboard as the customer; the first, the
 * /contribute page, keeps working beside it. */
async function dashboard() {
  const page = await browser.context.newPage();
  await signIn(page, grid, grid.apiKey);
  return page;
}

/** Job `id`'s page, once its chunk list shows `count` tasks: each item's title, its words for
 * screen readers, its index and state. */
async function chunkList(page, id, count) {
  const url = `${grid.url}/#/jobs/${id}`;
  // Already there, the page is loaded again (a new hash alone would load nothing).
  if (page.url() === url) await page.reload();
  else await page.goto(url);
  const items = page.locator('.chunk-grid li');
  await waitFor(async () => (await items.count()) === count, {
    timeout: 10_000, message: async () => `job ${id}'s chunk list: ${await page.locator('.chunks').textContent().catch((e) => e.message)}`,
  });
  return items.evaluateAll((els) => els.map((el) => ({
    title: el.title, words: el.querySelector('.sr-only').textContent, index: Number(el.dataset.index), state: el.dataset.state,
  })));
}

/** What the New-job form says of published app `reference` (name@version) once chosen. */
async function aboutInForm(page, reference) {
  await page.goto(`${grid.url}/#/jobs/new`);
  const app = page.getByLabel('App', { exact: true });
  await app.locator(`option[value="${reference}"]`).waitFor({ state: 'attached', timeout: 10_000 });
  await app.selectOption(reference);
  const about = page.getByRole('group', { name: 'Published app' });
  assert.equal(await about.isVisible(), true);
  return about.locator('.published-about').textContent();
}

/**
 * Job `id`'s page, its tasks' answer changed in the page so that its task at `index` (done) had
 * one failed attempt, for `reason`: what its chunk list says of that task, as an item and in
 * the list of why tasks failed. (A reduce or partition step does not fail on its own here.)
 */
async function failedOnce(page, id, index, reason) {
  const tasksPath = `/v1/jobs/${id}/tasks`;
  const handler = async (route) => {
    const response = await route.fetch();
    const answer = await response.json();
    for (const task of answer.tasks) if (task.index === index) Object.assign(task, { failures: 1, last_failure: reason });
    await route.fulfill({ response, json: answer });
  };
  await page.route((url) => url.pathname === tasksPath, handler);
  try {
    const items = await chunkList(page, id, (await tasks(id)).length);
    const failures = page.locator('.chunk-failures');
    await failures.locator('.failure-list').waitFor({ timeout: 10_000 });
    return {
      item: items.find((i) => i.index === index),
      listed: await failures.locator('.failure-list > li').evaluateAll((els) => els.map((el) => [
        el.querySelector('span').textContent, el.querySelector('.failure-reason').textContent])),
    };
  } finally {
    await page.unroute((url) => url.pathname === tasksPath, handler);
  }
}

/** A chunk's name in the list: "Chunk n of N", N the job's chunks (its steps' tasks left out). */
const chunkName = (n, total) => `Chunk ${n} of ${total}: done`;

test('the dashboard names word-count\'s reduce step in its chunk list and its logs; the form says what reduce.py does', { timeout: 60_000 }, async () => {
  assert.ok(wordCount, 'the first test ran a word-count job to its end');
  const page = await dashboard();
  try {
    // The chunk list: the 3 chunks by their numbers from 1, then one reduce step, named as such
    // in its title and in its words for screen readers alike.
    const items = await chunkList(page, wordCount.id, 4);
    console.log(`word-count's chunk list: ${items.map((i) => i.title).join(' | ')}`);
    for (const item of items) assert.equal(item.words, item.title, 'the words for screen readers are the title\'s');
    assert.deepEqual(items.map((i) => i.index), [0, 1, 2, wordCount.reduceIndex]);
    items.slice(0, 3).forEach((item, i) => assert.equal(item.title, chunkName(i + 1, 3)));
    assert.equal(items[3].title, 'Reduce step: done');
    assert.equal(items.filter((i) => /^Reduce step/.test(i.title)).length, 1);
    assert.equal(items.filter((i) => /Partition step|Chunk 4|Chunk 1099511627/.test(i.title)).length, 0, 'no task named otherwise');
    // Had the step failed an attempt, the list of why names it as the step too.
    const failed = await failedOnce(page, wordCount.id, wordCount.reduceIndex, 'reduce.py: a reason');
    assert.equal(failed.item.title, 'Reduce step: done, retried (1 failed attempt)');
    assert.equal(failed.item.words, failed.item.title);
    assert.deepEqual(failed.listed, [['Reduce step, 1 failed attempt so far:', 'reduce.py: a reason']]);

    // The Logs section: the reduce step's two logs, both headed by the step: the grid's (it
    // handed the outputs to reduce.py) and the device's, with the device and the outcome (no
    // chunk), and reduce.py's line.
    const section = page.locator('#job-logs');
    await section.locator('summary').click();
    const reduce = section.locator('.log-entry[data-step="reduce"]');
    await waitFor(async () => (await reduce.count()) === 2, {
      timeout: 10_000, message: async () => `the logs shown: ${await section.textContent()}`,
    });
    const shown = await reduce.evaluateAll((els) => els.map((el) => ({
      head: el.querySelector('.log-head').textContent,
      lines: [...el.querySelectorAll('.log-line')].map((li) => [li.dataset.level, li.querySelector('.log-text').textContent]),
    })));
    const [byGrid, byDevice] = shown;
    assert.match(byGrid.head, /^Reduce · \S/, byGrid.head);
    assert.doesNotMatch(byGrid.head, / · device /, byGrid.head);
    assert.deepEqual(byGrid.lines.map(([level]) => level), ['info']);
    assert.match(byGrid.lines[0][1], /^INFO: 3 outputs \(\d+ bytes\) handed to reduce\.py/);
    assert.match(byDevice.head, new RegExp(`^Reduce · device ${device.id} · completed · \\S`), byDevice.head);
    assert.deepEqual(byDevice.lines, [['info', `INFO: 3 chunks, ${wordCount.distinct} distinct words`]]);
    // Every log of the step, and only those, is headed "Reduce".
    const heads = await section.locator('.log-entry').evaluateAll((els) => els.map((el) => [el.dataset.step, el.querySelector('.log-head').textContent]));
    for (const [step, text] of heads) assert.equal(text.startsWith('Reduce · '), step === 'reduce', `${step}: ${text}`);

    // The New-job form: word-count's output is what its own reduce script makes of the chunks'.
    const { version } = exampleBundle('word-count').manifest;
    const about = await aboutInForm(page, `word-count@${version}`);
    assert.match(about, new RegExp(`^word-count ${version.replaceAll('.', '\\.')}, yours, published .+\\. It brings its own task script, `
      + 'run on each chunk of the files of the input archive \\(zip, tar or tar\\.gz\\), each chunk a tar of them; '
      + 'the output is what its own reduce script \\(reduce\\.py, run on a device last\\) makes of the chunks’ outputs\\. Its versions\\.$'), about);
  } finally {
    await page.close();
  }
  assert.deepEqual(browser.errors, []);
});

test('an app\'s own partition script: the form says it cuts the input; a job of it runs in the browser, its chunks in the archive\'s order', { timeout: 60_000 }, async () => {
  // The partition writes a tar of 2 files: the input's first line, then the rest, named so that
  // their names' order is not the archive's. Each chunk is copied; `concat` joins them.
  const manifest = {
    name: 'halves', version: '1.0.0', description: 'Cuts a text after its first line; each part is copied as it is.',
    entrypoint: 'task.py', input_name: 'text.txt', partitioner: 'partition.py', validator: 'integrity', assembler: 'concat',
    deterministic: true, requirements: { python: '3.8', memory_mb: 128 },
    parameters: { type: 'object', properties: {}, additionalProperties: false },
  };
  const files = {
    'partition.py': `import io, os, sys, tarfile
data = open(os.path.join("input", "text.txt"), "rb").read()
cut = data.index(b"\\n") + 1
with tarfile.open(os.path.join("output", "parts.tar"), "w", format=tarfile.USTAR_FORMAT) as out:
    for name, part in (("z-head.txt", data[:cut]), ("a-rest.txt", data[cut:])):
        info = tarfile.TarInfo(name)
        info.size = len(part)
        info.mtime = 0
        info.mode = 0o644
        out.addfile(info, io.BytesIO(part))
print(f"INFO: cut after byte {cut}", file=sys.stderr)
`,
    'task.py': 'import os, shutil\nshutil.copy(os.path.join("input", "text.txt"), os.path.join("output", "out"))\n',
  };
  const published = await call(grid, grid.apiKey, '/v1/apps', { method: 'POST', body: { manifest, files } });
  assert.equal(published.manifest.partitioner, 'partition.py');

  const page = await dashboard();
  try {
    const about = await aboutInForm(page, 'halves@1.0.0');
    assert.match(about, new RegExp('^halves 1\\.0\\.0, yours, published .+\\. It brings its own task script, '
      + 'run on each chunk its own partition script \\(partition\\.py, run on a device first\\) cuts the input into; '
      + 'the output is the chunks’ outputs joined in order\\. Its versions\\.$'), about);

    // A job of it, on the browser: the partition step, then one task per file of its tar.
    const head = 'first line, the head\n';
    const rest = 'second line\nthird line, the rest\n';
    const started = Date.now();
    const job = await runJob('halves', head + rest);
    const done = await waitForJob(job.id);
    console.log(`halves: ${done.chunks.total} tasks in ${Date.now() - started} ms in the browser`);
    const all = await tasks(job.id);
    assert.deepEqual(all.map((t) => [t.step ?? 'chunk', t.state]), [['chunk', 'done'], ['chunk', 'done'], ['partition', 'done']], JSON.stringify(all));
    assert.ok(all[2].index >= 2 ** 40, `the partition task's index ${all[2].index}`);
    // The output: the archive's files joined in its order (the head first), byte for byte.
    const bytes = await output(job.id);
    assert.equal(bytes.toString('utf8'), head + rest);
    assert.equal(done.output.sha256, sha256(bytes));
    // The page ran the partition step, and names it so.
    await waitFor(async () => (await recentTasks(browser.page)).some((t) => t.startsWith(`Job ${job.id}, partition step (halves): done in `)), {
      timeout: 10_000, message: async () => `the page's recent tasks: ${(await recentTasks(browser.page)).join(' | ')}`,
    });

    // Its job page lists the 2 chunks and the partition step.
    const items = await chunkList(page, job.id, 3);
    console.log(`halves' chunk list: ${items.map((i) => i.title).join(' | ')}`);
    for (const item of items) assert.equal(item.words, item.title);
    assert.equal(items[0].title, chunkName(1, 2));
    assert.equal(items[1].title, chunkName(2, 2));
    assert.equal(items[2].title, 'Partition step: done');
    const failed = await failedOnce(page, job.id, items[2].index, 'partition.py: a reason');
    assert.equal(failed.item.title, 'Partition step: done, retried (1 failed attempt)');
    assert.deepEqual(failed.listed, [['Partition step, 1 failed attempt so far:', 'partition.py: a reason']]);
  } finally {
    await page.close();
  }
  const now = await devices();
  assert.deepEqual(now.map((d) => [d.id, d.capabilities.runtime]), [[device.id, 'browser']]);
  assert.deepEqual(browser.errors, []);
});
