// A static file server standing in for the coordinator's routes the browser worker needs:
// web/ui/ at /ui/, the browser runtimes at /runtimes/ and a blank page at /, every response
// with the isolation headers and the runner's CSP the coordinator sends; and the runner's
// messages as a page sends them (runInWorker, run).

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { WEB } from './helpers.mjs';

export const REPO = path.resolve(WEB, '../../..');
export const RUNTIMES = path.join(REPO, 'target', 'browser-runtimes');

/** The CSP at the top of ui/runner.js, which the worker's own response must carry. */
export const RUNNER_CSP = fs.readFileSync(path.join(WEB, 'ui', 'runner.js'), 'utf8')
  .match(/^\/\/ Content-Security-Policy: (.+)$/m)[1];

// Module scripts are refused without a JavaScript type, and Pyodide compiles its .wasm with
// instantiateStreaming, which needs application/wasm.
const TYPES = {
  '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.zip': 'application/zip', '.html': 'text/html; charset=utf-8',
};

const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Content-Security-Policy': RUNNER_CSP,
};

const ROOTS = { '/ui/': path.join(WEB, 'ui'), '/runtimes/': RUNTIMES };

/** Runs scripts/browser-runtimes.sh unless the runtimes are already in place (in the layout
 * of today's script: runtimes.json naming each runtime's directory, dash.js's too, each of
 * them there). */
export function ensureRuntimes() {
  const read = () => {
    try {
      return JSON.parse(fs.readFileSync(path.join(RUNTIMES, 'runtimes.json'), 'utf8'));
    } catch {
      return null;
    }
  };
  const current = read();
  const dirs = ['pyodide', 'ffmpeg', 'ffmpeg_mt', 'dashjs'].map((name) => current?.dirs?.[name]);
  if (!dirs.every((dir) => dir && fs.existsSync(path.join(RUNTIMES, dir)))) {
    execFileSync(path.join(REPO, 'scripts', 'browser-runtimes.sh'), { stdio: 'inherit' });
    return read();
  }
  return current;
}

/** The file under `roots` that `pathname` names, or null (also for anything escaping a root). */
function resolve(roots, pathname) {
  for (const [prefix, root] of Object.entries(roots)) {
    if (!pathname.startsWith(prefix)) continue;
    const file = path.resolve(root, `.${pathname.slice(prefix.length - 1)}`);
    return file.startsWith(`${root}${path.sep}`) ? file : null;
  }
  return null;
}

/** Starts the server on a free loopback port, with `mounts` ({'/prefix/': dir}) served beside
 * ROOTS; returns { url, close() }. `isolated: false` leaves out COOP and COEP: a page that is
 * not cross-origin isolated, as a browser worker served by a proxy that drops them. */
export async function startStaticServer({ mounts = {}, isolated = true } = {}) {
  const roots = { ...ROOTS, ...mounts };
  const ISOLATION = isolated ? HEADERS : { 'Content-Security-Policy': RUNNER_CSP };
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    if (pathname === '/') {
      res.writeHead(200, { ...ISOLATION, 'Content-Type': TYPES['.html'] });
      res.end('<!doctype html><title>runner test</title>');
      return;
    }
    const file = resolve(roots, decodeURIComponent(pathname));
    let stat;
    try { stat = file && fs.statSync(file); } catch { stat = null; }
    if (!stat || !stat.isFile()) {
      res.writeHead(404, ISOLATION);
      res.end();
      return;
    }
    res.writeHead(200, {
      ...ISOLATION,
      'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
      'Content-Length': stat.size,
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/**
 * Posts `message` (with `input` bytes as its transferred ArrayBuffer) to a new runner Worker of
 * `page` (`script`: the runner's address) and collects what it answers up to its final message,
 * or gives up after `timeout` ms. Returns { progress, final, output, ms, workerMs }: `workerMs`
 * from the Worker's creation to its answer, in the page; `ms` all of it, as the test saw it.
 */
export async function runInWorker(page, message, input, { script = '/ui/runner.js', timeout = 60_000 } = {}) {
  const started = Date.now();
  const answer = await page.evaluate(async ({ message, input, script, timeout }) => {
    if (input !== null) message.input = Uint8Array.from(atob(input), (c) => c.charCodeAt(0)).buffer;
    const created = performance.now();
    const worker = new Worker(script, { type: 'module' });
    const progress = [];
    const final = await new Promise((resolve) => {
      setTimeout(() => resolve({ type: 'no answer', after: timeout }), timeout);
      worker.onerror = (e) => resolve({ type: 'worker error', message: e.message });
      worker.onmessage = ({ data }) => (data.type === 'progress' ? progress.push(data.fraction) : resolve(data));
      worker.postMessage(message, message.input ? [message.input] : []);
    });
    const workerMs = Math.round(performance.now() - created);
    worker.terminate();
    let output = null;
    if (final.output instanceof ArrayBuffer) {
      const bytes = new Uint8Array(final.output);
      let binary = '';
      for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      output = btoa(binary);
      final.output = `${bytes.length} bytes`;
    }
    return { progress, final, output, workerMs };
  }, { message, input: input === undefined ? null : Buffer.from(input).toString('base64'), script, timeout });
  return { ...answer, output: answer.output === null ? null : Buffer.from(answer.output, 'base64'), ms: Date.now() - started };
}

/** A run message for `script` as the bundle's task.py. */
export function run(script, { inputName = 'chunk.txt', task = {}, maxOutputBytes = 1 << 20 } = {}) {
  return {
    type: 'run',
    files: { 'task.py': script },
    entrypoint: 'task.py',
    inputName,
    env: { IDLEGRID_PARAMS: '{}', IDLEGRID_TASK: JSON.stringify(task), IDLEGRID_TASK_ID: '12', IDLEGRID_CHUNK_INDEX: '0' },
    maxOutputBytes,
  };
}
