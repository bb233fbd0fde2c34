// A static file server standing in for the coordinator's routes the browser worker needs:
// web/ui/ at /ui/, the browser runtimes at /runtimes/ and a blank page at /, every response
// with the isolation headers and the runner's CSP the coordinator sends.

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

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Content-Security-Policy': RUNNER_CSP,
};

const ROOTS = { '/ui/': path.join(WEB, 'ui'), '/runtimes/': RUNTIMES };

/** Runs scripts/browser-runtimes.sh unless the runtimes are already in place. */
export function ensureRuntimes() {
  if (!fs.existsSync(path.join(RUNTIMES, 'runtimes.json'))) {
    execFileSync(path.join(REPO, 'scripts', 'browser-runtimes.sh'), { stdio: 'inherit' });
  }
  return JSON.parse(fs.readFileSync(path.join(RUNTIMES, 'runtimes.json'), 'utf8'));
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
 * ROOTS; returns { url, close() }. */
export async function startStaticServer({ mounts = {} } = {}) {
  const roots = { ...ROOTS, ...mounts };
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
