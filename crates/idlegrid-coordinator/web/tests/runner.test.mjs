// The browser worker's task runner (ui/runner.js) in headless Chromium, each task in a fresh
// module Worker, served as the coordinator will serve it (tests/static-server.mjs):
// (a) probe: Python, ffmpeg and benchmark; (b) a python-map script's output and SHA-256;
// (c) a failing script's traceback; (d) two output files; (e) the real video-transcode
// task.py on a real chunk, decoded by the native ffprobe; (f) its audio kind; (g) an output over
// the limit; (h) what a script can reach of the worker's global scope; (i) a runtime that
// fails to load, and (i2) threads of ffmpeg.wasm that cannot start (the single-threaded core
// instead; tests/ffmpeg-fallback.test.mjs has the rest of it); (j) ffprobe and ffmpeg run
// several times, through subprocess's helpers; (k) ffmpeg's own error in the reason of a task it fails; (l) the script's environment;
// (m) sys.exit with a message; (n) the task's log (its stderr tail, whole) with done and failed
// answers, and none for a script that wrote nothing to stderr.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { launchBrowser, sha256, UPPER_SCRIPT, WEB } from './helpers.mjs';
import { ensureRuntimes, run, runInWorker, RUNTIMES, startStaticServer } from './static-server.mjs';

const VIDEO_TASK = fs.readFileSync(path.join(WEB, '..', 'apps', 'video-transcode', 'task.py'), 'utf8');

/** How long one case may take before the page gives up on its worker. */
const CASE_TIMEOUT_MS = 60_000;

let runtimes;
let server;
let browser;
let dir;

before(async () => {
  runtimes = ensureRuntimes();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idlegrid-runner-'));
  // The runner as served beside runtimes whose Pyodide lacks its WebAssembly.
  const broken = path.join(dir, 'broken-runtimes');
  const pyodide = runtimes.dirs.pyodide;
  fs.mkdirSync(path.join(broken, pyodide), { recursive: true });
  fs.symlinkSync(path.join(RUNTIMES, 'runtimes.json'), path.join(broken, 'runtimes.json'));
  for (const name of fs.readdirSync(path.join(RUNTIMES, pyodide)).filter((n) => n !== 'pyodide.asm.wasm')) {
    fs.symlinkSync(path.join(RUNTIMES, pyodide, name), path.join(broken, pyodide, name));
  }
  // And beside runtimes whose threaded ffmpeg.wasm lacks the script its threads start from.
  const threadless = path.join(dir, 'threadless-runtimes');
  fs.mkdirSync(path.join(threadless, runtimes.dirs.ffmpeg_mt), { recursive: true });
  for (const name of ['runtimes.json', runtimes.dirs.pyodide, runtimes.dirs.ffmpeg].map((n) => n.replace(/\/$/, ''))) {
    fs.symlinkSync(path.join(RUNTIMES, name), path.join(threadless, name));
  }
  for (const name of fs.readdirSync(path.join(RUNTIMES, runtimes.dirs.ffmpeg_mt)).filter((n) => n !== 'ffmpeg-core.worker.js')) {
    fs.symlinkSync(path.join(RUNTIMES, runtimes.dirs.ffmpeg_mt, name), path.join(threadless, runtimes.dirs.ffmpeg_mt, name));
  }
  server = await startStaticServer({
    mounts: {
      '/broken/ui/': path.join(WEB, 'ui'), '/broken/runtimes/': broken,
      '/threadless/ui/': path.join(WEB, 'ui'), '/threadless/runtimes/': threadless,
    },
  });
  browser = await launchBrowser();
  await browser.page.goto(`${server.url}/`);
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `message` in a new runner Worker of the test's page (runInWorker). */
function inWorker(message, input, { script = '/ui/runner.js' } = {}) {
  return runInWorker(browser.page, message, input, { script, timeout: CASE_TIMEOUT_MS });
}

function took(name, ms) {
  console.log(`${name}: ${ms} ms`);
}

function ffprobe(file, args) {
  return JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-of', 'json', ...args, file], { encoding: 'utf8' }));
}

test('runtimes.json names the installed versions, and each runtime\'s directory by its version', () => {
  assert.match(runtimes.pyodide, /^\d+\.\d+\.\d+$/);
  assert.equal(runtimes.ffmpeg_core, '0.12.10');
  assert.equal(runtimes.ffmpeg_core_mt, runtimes.ffmpeg_core, 'both ffmpeg.wasm cores from one release');
  assert.match(runtimes.python, /^3\.\d+\.\d+$/);
  // dash.js, the job page's DASH player, at the version package.json pins.
  assert.equal(runtimes.dashjs, JSON.parse(fs.readFileSync(path.join(WEB, 'package.json'), 'utf8')).dependencies.dashjs);
  assert.deepEqual(runtimes.dirs, {
    pyodide: `pyodide-${runtimes.pyodide}/`, ffmpeg: `ffmpeg-core-${runtimes.ffmpeg_core}/`, ffmpeg_mt: `ffmpeg-core-mt-${runtimes.ffmpeg_core_mt}/`,
    dashjs: `dashjs-${runtimes.dashjs}/`,
  });
  assert.ok(fs.statSync(path.join(RUNTIMES, runtimes.dirs.dashjs, 'dash.mediaplayer.min.js')).size > 100_000);
});

test('(a) probe: the Python inside Pyodide, ffmpeg.wasm\'s version and a benchmark', async () => {
  const { final, ms } = await inWorker({ type: 'probe' });
  took('probe', ms);
  assert.equal(final.type, 'probed', JSON.stringify(final));
  assert.equal(final.python, runtimes.python);
  assert.match(final.ffmpeg, /^\d+\.\d+/, JSON.stringify(final));
  // The page is cross-origin isolated and Chromium can suspend WebAssembly: the threaded core.
  assert.equal(final.ffmpegThreads, true, JSON.stringify(final));
  assert.ok(final.benchmark > 0, `benchmark ${final.benchmark}`);
  console.log(`probe: python ${final.python}, ffmpeg ${final.ffmpeg} (threaded core), benchmark ${final.benchmark} MB/s`);
});

test('(b) a python-map script: the expected bytes, their SHA-256, and its progress', async () => {
  const input = Array.from({ length: 20 }, (_, i) => `line ${i} of the chunk, Mixed Case\n`).join('');
  const script = `${UPPER_SCRIPT}print("idlegrid:progress 0.5")\nprint("idlegrid:progress 1")\n`;
  const { final, output, progress, ms } = await inWorker(run(script), input);
  took('python-map', ms);
  assert.equal(final.type, 'done', JSON.stringify(final));
  assert.equal(final.name, 'out.txt');
  assert.equal(output.toString(), input.toUpperCase());
  assert.equal(final.sha256, sha256(output));
  assert.equal(progress.at(-1), 1);
  assert.equal(final.log, undefined, 'nothing on stderr: no log');
});

test('(c) a failing script: its status and the traceback\'s tail', async () => {
  const script = 'import json\n\ndef check(line):\n    raise ValueError(f"no good: {line!r}")\n\ncheck(open("input/chunk.txt").readline())\n';
  const { final, ms } = await inWorker(run(script), 'the first line\n');
  took('failing script', ms);
  assert.equal(final.type, 'failed');
  assert.match(final.reason, /^script exited with status 1: Traceback \(most recent call last\):/);
  assert.match(final.reason, /File "\/scratch\/app\/task\.py", line 4, in check/);
  assert.match(final.reason, /ValueError: no good: 'the first line\\n'$/);
  assert.doesNotMatch(final.reason, /runpy/, 'the traceback starts at the script');
  // The task's log is the same tail (here short enough to be whole in the reason too).
  assert.equal(final.reason, `script exited with status 1: ${final.log}`);
});

test('(d) a script writing two files fails naming both', async () => {
  const script = 'for name in ("b.txt", "a.txt"):\n    open(f"output/{name}", "w").write(name)\n';
  const { final, ms } = await inWorker(run(script), 'x\n');
  took('two outputs', ms);
  assert.equal(final.type, 'failed');
  assert.equal(final.reason, 'output/ must hold exactly one file, found 2: a.txt, b.txt');
});

/** A 1-second 160x120 30 fps H.264 clip in Matroska, made with the native ffmpeg. */
function videoChunk() {
  const chunk = path.join(dir, 'video.mkv');
  if (!fs.existsSync(chunk)) {
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=30', '-t', '1',
      '-c:v', 'libx264', '-g', '30', '-f', 'matroska', chunk]);
  }
  return chunk;
}

test('(e) the real video-transcode task.py encodes a chunk with ffmpeg.wasm', async () => {
  const chunk = videoChunk();
  const task = { kind: 'video', frames: 30, width: 160, height: 120, scale: true, encoder: { preset: 'veryfast', threads: 1, crf: 28 } };
  const { final, output, progress, ms } = await inWorker(run(VIDEO_TASK, { inputName: 'chunk.mkv', task, maxOutputBytes: 64 << 20 }), fs.readFileSync(chunk));
  took('video chunk', ms);
  assert.equal(final.type, 'done', JSON.stringify(final));
  assert.equal(final.name, 'chunk.mkv');
  assert.equal(final.sha256, sha256(output));
  assert.equal(progress.at(-1), 1, `progress ${progress}`);
  const encoded = path.join(dir, 'encoded.mkv');
  fs.writeFileSync(encoded, output);
  const { streams } = ffprobe(encoded, ['-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames']);
  assert.deepEqual(streams, [{ codec_name: 'h264', width: 160, height: 120, nb_read_frames: '30' }]);
});

test('(f) the video-transcode task.py\'s audio kind', async () => {
  const chunk = path.join(dir, 'audio.mkv');
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-c:a', 'flac', '-f', 'matroska', chunk]);
  const task = { kind: 'audio', encoder: { audio_bitrate: '64k', audio_channels: 2, audio_sample_rate: 48000 } };
  const { final, output, ms } = await inWorker(run(VIDEO_TASK, { inputName: 'chunk.mkv', task, maxOutputBytes: 64 << 20 }), fs.readFileSync(chunk));
  took('audio chunk', ms);
  assert.equal(final.type, 'done', JSON.stringify(final));
  assert.equal(final.name, 'audio.m4a');
  const encoded = path.join(dir, 'audio.m4a');
  fs.writeFileSync(encoded, output);
  const { streams } = ffprobe(encoded, ['-show_entries', 'stream=codec_name,channels,sample_rate']);
  assert.deepEqual(streams, [{ codec_name: 'aac', channels: 2, sample_rate: '48000' }]);
});

test('(g) an output over the limit fails saying so', async () => {
  const { final, ms } = await inWorker(run('open("output/big.bin", "wb").write(bytes(2000))\n', { maxOutputBytes: 1000 }), 'x\n');
  took('over the limit', ms);
  assert.equal(final.type, 'failed');
  assert.equal(final.reason, 'output is 2000 bytes, over the 1000-byte limit');
});

test('(h) a script reaches neither the network, nor storage, nor the page; other programs are missing', async () => {
  const script = `import js, subprocess
reachable = [n for n in ("fetch", "XMLHttpRequest", "WebSocket", "indexedDB", "caches", "navigator",
                         "postMessage", "close", "Worker", "BroadcastChannel", "importScripts") if hasattr(js, n)]
try:
    subprocess.run(["sh", "-c", "true"])
    missing = "no"
except FileNotFoundError as e:
    missing = str(e)
open("output/out.txt", "w").write(f"{reachable} {missing}")
`;
  const { final, output, ms } = await inWorker(run(script), 'x\n');
  took('ways out', ms);
  assert.equal(final.type, 'done', JSON.stringify(final));
  assert.match(output.toString(), /^\[\] \[Errno \d+\] No such file or directory: 'sh'$/);
});

test('(i) a runtime that fails to load: failed, naming it and why', async () => {
  const { final, ms } = await inWorker(run('print("never runs")\n'), 'x\n', { script: '/broken/ui/runner.js' });
  took('broken runtime', ms);
  assert.equal(final.type, 'failed', JSON.stringify(final));
  assert.match(final.reason, /^cannot start the browser's Python \(Pyodide\): Error: its WebAssembly failed to load: /);
});

test('(i2) threads of ffmpeg.wasm that cannot start: the probe says so, and falls back to the single-threaded core', async () => {
  const { final, ms } = await inWorker({ type: 'probe' }, undefined, { script: '/threadless/ui/runner.js' });
  took('threads that cannot start', ms);
  assert.equal(final.type, 'probed', JSON.stringify(final));
  assert.match(final.ffmpeg, /^\d+\.\d+/, JSON.stringify(final));
  assert.equal(final.ffmpegThreads, false);
  assert.equal(final.ffmpegError, undefined);
  assert.match(final.ffmpegThreadsError, /^Error: a thread of ffmpeg\.wasm failed to start: /);
});

test('(j) ffprobe and ffmpeg run several times in one task, through run, check_call and check_output', async () => {
  const script = `import json, subprocess
probe = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_entries", "stream=codec_name",
                        "input/chunk.mkv"], capture_output=True, text=True, check=True)
assert json.loads(probe.stdout)["streams"] == [{"codec_name": "h264"}], probe.stdout
# A file ffmpeg writes outside output/ is there for the script, and for the next run.
subprocess.check_call(["ffmpeg", "-v", "error", "-i", "input/chunk.mkv", "-frames:v", "10",
                       "-c:v", "libx264", "-preset", "ultrafast", "first.mkv"])
progress = subprocess.check_output(["ffmpeg", "-v", "error", "-progress", "pipe:1", "-i", "first.mkv",
                                    "-c", "copy", "output/second.mkv"], text=True)
assert "progress=end" in progress, progress
`;
  const { final, output, ms } = await inWorker(run(script, { inputName: 'chunk.mkv', maxOutputBytes: 64 << 20 }), fs.readFileSync(videoChunk()));
  took('several ffmpeg runs', ms);
  assert.equal(final.type, 'done', JSON.stringify(final));
  const encoded = path.join(dir, 'second.mkv');
  fs.writeFileSync(encoded, output);
  const { streams } = ffprobe(encoded, ['-count_frames', '-show_entries', 'stream=codec_name,nb_read_frames']);
  assert.deepEqual(streams, [{ codec_name: 'h264', nb_read_frames: '10' }]);
});

test('(k) a chunk ffmpeg cannot read fails with ffmpeg\'s error', async () => {
  const task = { kind: 'video', frames: 30, width: 160, height: 120, encoder: { preset: 'veryfast', threads: 1, crf: 28 } };
  const { final, ms } = await inWorker(run(VIDEO_TASK, { inputName: 'chunk.mkv', task }), 'not a video\n');
  took('unreadable chunk', ms);
  assert.equal(final.type, 'failed', JSON.stringify(final));
  assert.match(final.reason, /^script exited with status 1: .*input\/chunk\.mkv: Invalid data found when processing input$/s);
});

test('(l) the script runs as natively: its environment, argv, cwd, sys.path, empty stdin, asyncio', async () => {
  const script = `import asyncio, json, os, sys
async def answer():
    await asyncio.sleep(0.01)
    return 42
seen = {"env": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0],
        "stdin": sys.stdin.read(), "name": __name__, "asyncio": asyncio.run(answer()),
        "files": sorted(os.listdir(".")), "input": os.listdir("input")}
json.dump(seen, open("output/seen.json", "w"))
`;
  const message = run(script);
  const { final, output, ms } = await inWorker(message, 'x\n');
  took('environment', ms);
  assert.equal(final.type, 'done', JSON.stringify(final));
  assert.deepEqual(JSON.parse(output), {
    env: { ...message.env, HOME: '/scratch', TMPDIR: '/scratch', LANG: 'C.UTF-8', PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
    argv: ['/scratch/app/task.py'],
    cwd: '/scratch',
    path0: '/scratch/app',
    stdin: '',
    name: '__main__',
    asyncio: 42,
    files: ['app', 'input', 'output'],
    input: ['chunk.txt'],
  });
});

test('(m) sys.exit with a message: status 1 and the message', async () => {
  const { final, ms } = await inWorker(run('import sys\nprint("working")\nsys.exit("the chunk is empty")\n'), '');
  took('sys.exit', ms);
  assert.equal(final.type, 'failed');
  assert.equal(final.reason, 'script exited with status 1: the chunk is empty');
});

test('(n) the task\'s log: its stderr tail, whole (not cut to the reason\'s length), done or failed', async () => {
  const done = await inWorker(run(`import sys\nprint("INFO: starting", file=sys.stderr)\nprint("WARNING: odd line", file=sys.stderr)\n${UPPER_SCRIPT}`), 'a\n');
  took('log of a done task', done.ms);
  assert.equal(done.final.type, 'done', JSON.stringify(done.final));
  assert.equal(done.final.log, 'INFO: starting\nWARNING: odd line');
  // 400 lines of 100 bytes, then a traceback: the reason keeps its end within max_reason_bytes,
  // the log the last stderr_tail_bytes, from a dropped start (…).
  const rules = JSON.parse(fs.readFileSync(path.join(WEB, 'ui', 'runner-rules.json'), 'utf8'));
  const script = 'import sys\nfor i in range(400):\n    print(f"INFO: line {i:04} " + "x" * 84, file=sys.stderr)\nraise ValueError("at the end")\n';
  const failed = await inWorker(run(script), 'a\n');
  took('log of a failed task', failed.ms);
  assert.equal(failed.final.type, 'failed', JSON.stringify(failed.final));
  const { reason, log } = failed.final;
  assert.ok(Buffer.byteLength(reason) <= rules.max_reason_bytes, `reason of ${Buffer.byteLength(reason)} bytes`);
  assert.ok(log.startsWith('…'), 'earlier output was dropped');
  assert.ok(Buffer.byteLength(log.slice(1)) <= rules.stderr_tail_bytes, `log of ${Buffer.byteLength(log)} bytes`);
  assert.ok(Buffer.byteLength(log) > rules.stderr_tail_bytes - 200, `log of ${Buffer.byteLength(log)} bytes: the whole tail`);
  assert.match(log, /INFO: line 0399 x{84}\nTraceback \(most recent call last\):\n[\s\S]*ValueError: at the end$/);
  assert.ok(log.endsWith(reason.slice(reason.indexOf('…') + 1)), 'the reason\'s tail is the log\'s end');
});

test('the browser logged no errors (no CSP violations)', () => {
  assert.deepEqual(browser.errors, []);
});
