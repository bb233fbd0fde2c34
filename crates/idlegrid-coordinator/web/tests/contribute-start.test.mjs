// The /contribute page's start, from the coordinator itself, first and returning: the first
// load downloads the runtimes (about 46 MB of WebAssembly, Python's library and scripts); a
// returning page takes every runtime file from the browser's cache without asking the
// coordinator again, since they live in directories named by their versions, which the
// coordinator marks immutable (only runtimes.json, which names them, is revalidated).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeGrid, openGrid } from './helpers.mjs';

let grid;
let browser;

before(async () => ({ grid, browser } = await openGrid({ workers: 0 })));
after(() => closeGrid({ grid, browser }));

/** Opens /contribute in `page` and waits until its runtimes are probed (the link form shows).
 * Returns {ms, bytes (response bodies received over the network), runtimes: [{path, fromNetwork, cacheControl}]}. */
async function open(page) {
  const seen = [];
  const finished = (request) => seen.push((async () => {
    const response = await request.response();
    const { responseBodySize } = await request.sizes();
    const headers = response ? await response.allHeaders() : {};
    return { path: new URL(request.url()).pathname, bytes: responseBodySize, cacheControl: headers['cache-control'] };
  })());
  page.on('requestfinished', finished);
  const started = Date.now();
  await page.goto(`${grid.url}/contribute`);
  await page.getByLabel('Link code').waitFor({ timeout: 90_000 });
  const ms = Date.now() - started;
  page.off('requestfinished', finished);
  const requests = await Promise.all(seen);
  return { ms, bytes: requests.reduce((n, r) => n + r.bytes, 0), runtimes: requests.filter((r) => r.path.startsWith('/runtimes/')) };
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

test('a returning /contribute page loads its runtimes from the browser\'s cache', async () => {
  const first = await open(browser.page);
  assert.ok(first.bytes > 40e6, `the first load downloads the runtimes: ${mb(first.bytes)}`);
  const wasm = first.runtimes.filter((r) => r.path.endsWith('.wasm'));
  assert.equal(wasm.length, 2, `Pyodide's and ffmpeg.wasm's WebAssembly: ${JSON.stringify(wasm)}`);
  for (const r of first.runtimes) {
    if (r.path === '/runtimes/runtimes.json') assert.equal(r.cacheControl, 'no-cache');
    else assert.equal(r.cacheControl, 'public, max-age=31536000, immutable', r.path);
  }
  // A new tab of the same browser, as a returning contributor opens it.
  const page = await browser.context.newPage();
  const second = await open(page);
  assert.ok(second.bytes < 1e6, `the second load downloads almost nothing: ${mb(second.bytes)}`);
  console.log(`/contribute until probed: first load ${first.ms} ms (${mb(first.bytes)} downloaded, ${first.runtimes.length} runtime files), `
    + `returning ${second.ms} ms (${mb(second.bytes)})`);
  await page.close();
  assert.deepEqual(browser.errors, []);
});
