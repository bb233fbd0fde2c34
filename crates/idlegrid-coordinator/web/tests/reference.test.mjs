// The API reference (#/api, from /openapi.json) is short enough to read and use:
// - at 1366x900 it is well under 20,000 px tall (endpoints and schemas closed until opened);
// - every endpoint has a curl example: its method, its path on this coordinator, the
//   Authorization header of its security scheme, and a JSON body of its schema's shape;
// - the errors are one table, once; each endpoint lists its error statuses as links to it;
// - descriptions are Markdown: `code` becomes <code>; the renderer makes nodes, never markup, and
//   links only to http(s) or relative URLs;
// - endpoints open and close by keyboard; a schema's or an error's link opens and focuses it;
// - no sideways scrolling at 390x844 with everything open.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeGrid, openGrid, screenshot, waitFor } from './helpers.mjs';

let grid;
let browser;
let doc;

before(async () => {
  ({ grid, browser } = await openGrid({ workers: 0 }));
  doc = await (await fetch(`${grid.url}/openapi.json`)).json();
});
after(() => closeGrid({ grid, browser }));

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** Every endpoint of the document: {method, path, op}. */
function operations() {
  return Object.entries(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method] })));
}

function resolve(schema) {
  let s = schema;
  while (s && s.$ref) s = s.$ref.replace(/^#\//, '').split('/').reduce((node, key) => node[key], doc);
  return s;
}

async function openReference(page, hash = '#/api') {
  await page.goto(`${grid.url}/${hash}`);
  await page.locator('.reference').waitFor();
}

test('the reference is short, with a curl example per endpoint and one error table', async () => {
  const { page } = browser;
  await page.setViewportSize({ width: 1366, height: 900 });
  await openReference(page);
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  assert.ok(height < 20_000, `the reference is ${height} px tall`);
  await screenshot(page, 'api-reference-closed');

  const ops = operations();
  assert.ok(ops.length > 20);
  assert.equal(await page.locator('details.op').count(), ops.length, 'one entry per endpoint');
  for (const { method, path, op } of ops) {
    const entry = page.locator(`details.op[data-method="${method}"][data-path="${path}"]`);
    const curl = await entry.locator('pre.curl').textContent();
    const where = `${method.toUpperCase()} ${path}`;
    const url = `${grid.url}${path.replace(/\{[^}]+\}/g, '[^/?\']+')}`.replace(/[.]/g, '\\.');
    assert.match(curl, new RegExp(`^curl${method === 'get' ? '' : ` -X ${method.toUpperCase()}`}( -N)? '${url}(\\?[^']*)?'`), `${where}: ${curl}`);
    const schemes = (op.security || []).flatMap((s) => Object.keys(s));
    if (schemes.length) {
      assert.ok(curl.includes(`-H "Authorization: Bearer $IDLEGRID_${schemes[0].toUpperCase()}"`), `${where} sends its secret: ${curl}`);
    } else {
      assert.ok(!curl.includes('Authorization'), `${where} needs no secret: ${curl}`);
    }
    const json = op.requestBody && resolve(op.requestBody).content['application/json'];
    if (json) {
      const body = curl.match(/ -d '([\s\S]*)'$/);
      assert.ok(body, `${where} has a JSON body: ${curl}`);
      const value = JSON.parse(body[1]);
      for (const field of resolve(json.schema).required || []) assert.ok(field in value, `${where}: the body has ${field}`);
    }
    // Only its status codes, the errors linked to the one table.
    const errors = Object.keys(op.responses).filter((s) => /^[45]/.test(s));
    assert.deepEqual(await entry.locator('.error-codes a.http-status').evaluateAll((els) => els.map((a) => a.getAttribute('href'))),
      errors.map((s) => `#/api/tags/errors-${s}`), `${where}: its error codes`);
  }
  assert.equal(await page.locator('table.errors-table').count(), 1, 'one error table');
  assert.equal(await page.locator('details.op a[href="#/api/schemas/ErrorBody"]').count(), 0, 'no endpoint repeats the error body');
  const statuses = [...new Set(ops.flatMap(({ op }) => Object.keys(op.responses).filter((s) => /^[45]/.test(s))))].sort();
  assert.deepEqual(await page.locator('table.errors-table tbody tr').evaluateAll((rows) => rows.map((r) => r.id)), statuses.map((s) => `tag-errors-${s}`));

  // Markdown: a field's `code` is <code>, and no backtick is left anywhere as text.
  const jobError = page.locator('details.schema[data-schema="Job"] table.fields tr', { has: page.locator('td:first-child code', { hasText: /^error$/ }) });
  assert.deepEqual(await jobError.locator('td:last-child code').allTextContents(), ['state', 'failed']);
  assert.equal(await page.evaluate(() => document.querySelector('.reference').textContent.includes('`')), false, 'no Markdown left unrendered');
  assert.deepEqual(browser.errors, []);
});

test('the Markdown renderer builds nodes, never markup, and links only to http(s) or relative URLs', async () => {
  const { page } = browser;
  await openReference(page);
  const rendered = await page.evaluate(async () => {
    const { markdown } = await import('/ui/markdown.js');
    const render = (text, options) => {
      const box = document.createElement('div');
      box.append(...markdown(text, options));
      return box;
    };
    const safe = render('Use `GET /v1/jobs` with **care**.\n\nSee [the docs](https://example.com/docs), [a page](/ui/x.html) and [`Job`].\n\n- one\n- two\n  wrapped\n\n1. first\n2. second',
      { reference: (name) => (name === 'Job' ? '#/api/schemas/Job' : null) });
    const hostile = render('<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> [a](javascript:window.pwned=3) '
      + '[b](JavaScript:alert(1)) [c](java\tscript:alert(1)) [d](data:text/html,x) [e](//evil.example/) [f](vbscript:x) **[g](https://ok.example/)**');
    return {
      html: safe.innerHTML,
      paragraphs: safe.querySelectorAll(':scope > p').length,
      code: [...safe.querySelectorAll('code')].map((c) => c.textContent),
      strong: [...safe.querySelectorAll('strong')].map((c) => c.textContent),
      links: [...safe.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      ul: [...safe.querySelectorAll('ul > li')].map((li) => li.textContent),
      ol: [...safe.querySelectorAll('ol > li')].map((li) => li.textContent),
      hostileElements: [...hostile.querySelectorAll('*')].map((el) => el.tagName.toLowerCase()),
      hostileLinks: [...hostile.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      hostileText: hostile.textContent,
      pwned: window.pwned,
    };
  });
  assert.equal(rendered.paragraphs, 2);
  assert.deepEqual(rendered.code, ['GET /v1/jobs', 'Job']);
  assert.deepEqual(rendered.strong, ['care']);
  assert.deepEqual(rendered.links, ['https://example.com/docs', '/ui/x.html', '#/api/schemas/Job']);
  assert.deepEqual(rendered.ul, ['one', 'two wrapped']);
  assert.deepEqual(rendered.ol, ['first', 'second']);
  assert.deepEqual(rendered.hostileLinks, ['https://ok.example/'], 'only the http(s) link is a link');
  assert.deepEqual([...new Set(rendered.hostileElements)].sort(), ['a', 'p', 'span', 'strong']);
  assert.match(rendered.hostileText, /<img src=x onerror="window\.pwned=1"> <script>/, 'markup shows as the text it is');
  assert.equal(rendered.pwned, undefined);
});

test('endpoints open by keyboard; links to a schema and to an error open and focus them', async () => {
  const { page } = browser;
  await page.setViewportSize({ width: 1366, height: 900 });
  await openReference(page);
  await page.locator('#page-title').focus();
  // Tab to the first endpoint, Enter opens it, Enter again closes it.
  let summary = null;
  for (let i = 0; i < 40 && !summary; i += 1) {
    await page.keyboard.press('Tab');
    summary = await page.evaluate(() => {
      const el = document.activeElement;
      return el && el.tagName === 'SUMMARY' && el.parentElement.matches('details.op') ? el.parentElement.dataset.path : null;
    });
  }
  assert.ok(summary, 'Tab reaches an endpoint');
  const entry = page.locator(`details.op[data-path="${summary}"]`).first();
  assert.equal(await entry.locator('pre.curl').isVisible(), false);
  await page.keyboard.press('Enter');
  await entry.locator('pre.curl').waitFor({ state: 'visible' });
  assert.ok(await page.evaluate(() => document.activeElement.matches(':focus-visible')), 'its focus shows');
  await page.keyboard.press('Enter');
  await entry.locator('pre.curl').waitFor({ state: 'hidden' });

  await openReference(page, '#/api/schemas/Job');
  await waitFor(() => page.evaluate(() => document.activeElement.id === 'schema-Job'), { message: 'the schema is focused' });
  assert.equal(await page.locator('details.schema[data-schema="Job"]').evaluate((d) => d.open), true);
  await openReference(page, '#/api/tags/errors-404');
  await waitFor(() => page.evaluate(() => document.activeElement.id === 'tag-errors-404'), { message: 'the 404 row is focused' });
  assert.deepEqual(browser.errors, []);
});

test('no sideways scrolling on a phone, with every endpoint and schema open', async () => {
  const { page } = browser;
  await page.setViewportSize({ width: 390, height: 844 });
  await openReference(page);
  await page.evaluate(() => document.querySelectorAll('details').forEach((d) => { d.open = true; }));
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `${width} px wide at 390 px`);
  await screenshot(page, 'api-reference-phone');
  await page.setViewportSize({ width: 1366, height: 900 });
  assert.deepEqual(browser.errors, []);
});
