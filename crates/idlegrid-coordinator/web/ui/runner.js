// The browser worker's task runner: runs ONE task's Python script with Pyodide, and ffmpeg.wasm
// for scripts that call ffmpeg, inside a dedicated module Web Worker, the way `idlegrid worker`
// runs it natively (crates/idlegrid-worker/src/runner.rs). The page makes a new Worker for every
// task and terminates it afterwards (also to enforce the timeout), so no task leaves state for
// the next:
//
//   new Worker('/ui/runner.js', { type: 'module' })
//
// A worker starts loading Pyodide as soon as it is created (seconds), so the page may create
// the next task's worker while the current task runs.
//
// Its response must carry this policy (Pyodide and ffmpeg.wasm compile WebAssembly; neither
// evaluates JavaScript from strings, so 'unsafe-eval' is not needed):
// Content-Security-Policy: default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'
//
// The runtimes are loaded from ../runtimes/ next to ../ui/ (scripts/browser-runtimes.sh puts
// them there), each from the directory ../runtimes/runtimes.json names for it (`dirs`, named by
// its version): .mjs/.js must be served as text/javascript, .wasm as application/wasm. The
// runner's Python side is runner.py beside this file, and the limits and names it shares with
// the native runner are in runner-rules.json beside it (crates/idlegrid-api/src/runner.rs
// embeds the same file); both are fetched as the worker starts.
//
// Messages, page → worker (one per worker):
//   {type: 'run', files: {<name>: <text>}, entrypoint: 'task.py', inputName: 'chunk.txt',
//    input: ArrayBuffer (transferred), env: {IDLEGRID_PARAMS, IDLEGRID_TASK, IDLEGRID_TASK_ID,
//    IDLEGRID_CHUNK_INDEX}, maxOutputBytes: N, ffmpegThreads?: <the probe's ffmpegThreads>}
//   {type: 'probe'}
// worker → page:
//   {type: 'progress', fraction}   from the script's `idlegrid:progress <fraction>` stdout lines,
//                                  at most one every 100 ms, only when the fraction changed
//   {type: 'done', name, output: ArrayBuffer (transferred), sha256: '<lower hex>', log?}
//   {type: 'failed', reason, log?} `reason` at most max_reason_bytes: what went wrong, then the
//                                  stderr tail; `log` the task's log for its report, as natively:
//                                  that tail whole (at most stderr_tail_bytes, `…` first when
//                                  earlier output was dropped), absent when empty
//   {type: 'probed', python: '3.14.2', ffmpeg: '<version>' | null, benchmark: <MB/s>,
//    ffmpegThreads: <whether ffmpeg runs with the multi-threaded core>,
//    ffmpegThreadsError?: '<why the multi-threaded core did not start, so the other one runs>',
//    ffmpegError?: '<why ffmpeg is null>'}
// Every message gets exactly one final answer (done, failed or probed).
//
// Which core runs is settled by the probe, once per page: the multi-threaded one where the page
// allows it (THREADED) and it starts, else the single-threaded one; the page reports that core
// in its capabilities and hands the probe's ffmpegThreads to every run, which uses that core and
// no other (a run whose core cannot start fails rather than switch, since the two cores give
// different bytes and replicas are compared by the core's name). A run without ffmpegThreads
// takes THREADED.
//
// The script runs as `__main__` with cwd /scratch holding input/<inputName> and an empty
// output/, the bundle in /scratch/app/, and an environment of the page's IDLEGRID_* variables
// plus HOME, TMPDIR and the rules' script_env (LANG, PYTHON*), as natively. Success is exit
// status 0 and exactly one regular file in output/, within maxOutputBytes. `subprocess` runs
// ffmpeg and ffprobe with ffmpeg.wasm in this worker, its multi-threaded core where the page is
// cross-origin isolated and the browser can suspend WebAssembly (JSPI) and the core started in
// the probe, else its single-threaded one (see FFMPEG below); any other program is missing.
// Before the script runs, the worker's ways out (network, storage, messages to the page, other
// workers) are removed from its global scope, so a script can reach nothing but its own files.

const RUNTIMES = new URL('../runtimes/', import.meta.url);
const SCRATCH = '/scratch';
const OUTPUT = `${SCRATCH}/output`;
const PROGRESS_INTERVAL_MS = 100;
/** The rules the native runner keeps too (runner-rules.json: stderr_tail_bytes,
 * max_reason_bytes, max_stdout_line_bytes, progress_prefix, max_file_name_bytes, script_env,
 * benchmark_*), set as the worker starts, before Python does. */
let RULES;

// Taken now: lockDown removes them from the global scope before the script runs.
const post = self.postMessage.bind(self);
const SyncRequest = self.XMLHttpRequest;
const fetchNow = self.fetch.bind(self);
const WorkerNow = self.Worker;
const CORES = Math.max(1, navigator.hardwareConcurrency || 1);

/** Whether a script can wait for a promise while it seems to block (JSPI: WebAssembly stack
 * switching, which Pyodide's run_sync uses). */
const SUSPENDS = 'Suspending' in WebAssembly;
/** Whether ffmpeg can run with ffmpeg.wasm's multi-threaded core: its threads share memory, which
 * browsers allow only where the page is cross-origin isolated, and each run's threads (Web
 * Workers) must have started before the run blocks this worker, which a script's synchronous
 * call can wait for only when it can suspend. Elsewhere the single-threaded core runs it, and
 * also where the threaded core cannot start (its 1 GiB of shared memory or its 32 Workers
 * refused), which the probe finds out. */
const THREADED = self.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' && SUSPENDS;

const encoder = new TextEncoder();
const lossy = new TextDecoder();
const strict = new TextDecoder('utf-8', { fatal: true });

let used = false;
self.onmessage = async ({ data }) => {
  const first = !used;
  used = true;
  try {
    await rulesLoaded;
  } catch (err) {
    post({ type: 'failed', reason: `the browser runner cannot load its rules: ${describe(err)}` });
    return;
  }
  let answer;
  try {
    if (!first) answer = failed('this runner has already had its message; make a new Worker for each task');
    else if (data?.type === 'run') answer = await runTask(data);
    else if (data?.type === 'probe') answer = await probe();
    else answer = failed(`unknown message type ${JSON.stringify(data?.type)}`);
  } catch (err) {
    answer = failed(`the browser runner failed: ${describe(err)}`);
  }
  post(answer.message, answer.transfer || []);
};

function failed(reason) {
  return { message: { type: 'failed', reason: truncateBytes(reason, RULES.max_reason_bytes) } };
}

/** `answer` with the task's log: the stderr tail, whole (the reason has only as much of it as
 * fits in max_reason_bytes), unless it is empty. */
function withLog(answer) {
  const log = stderr.render();
  if (log) answer.message.log = log;
  return answer;
}

function describe(err) {
  // Emscripten's file system errors say only "FS error", if anything; their errno says which.
  if (typeof err?.errno === 'number') return `file system error (errno ${err.errno})`;
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

// ---------------------------------------------------------------------------------------------
// Running a task.

async function runTask(msg) {
  const problem = checkRun(msg);
  if (problem) return failed(problem);
  const stdout = new ProgressScanner();
  let py;
  try {
    py = await python;
  } catch (err) {
    return withLog(failed(compose(`cannot start the browser's Python (Pyodide): ${describe(err)}`, stderr.render(), '')));
  }
  prepareScratch(py.FS, msg);
  py.setStdout({ write: (bytes) => { stdout.write(bytes); return bytes.length; } });
  py.setStderr({ write: (bytes) => { stderr.write(bytes); return bytes.length; } });
  // Standard input is empty, as the native worker's /dev/null.
  py.setStdin({ read: () => 0 });
  const threaded = msg.ffmpegThreads ?? THREADED;
  const tools = new Tools(py.FS, await ffmpegGlue(threaded), threaded, { stdout: (b) => stdout.write(b), stderr: (b) => stderr.write(b) });
  const harness = await loadHarness(py, tools);

  lockDown();
  const runScript = harness.get('run_script');
  const args = [`${SCRATCH}/app/${msg.entrypoint}`, { ...msg.env, ...baseEnv() }];
  let status;
  try {
    // Where the browser can switch WebAssembly stacks (JSPI), Python code can wait for
    // JavaScript promises, so asyncio.run works as natively.
    status = 'Suspending' in WebAssembly ? await runScript.callPromising(...args) : runScript(...args);
  } catch (err) {
    // Pyodide itself failed (out of memory, a fatal error): the interpreter is gone.
    return withLog(failed(compose(`the browser's Python crashed: ${describe(err)}`, stderr.render(), '')));
  }
  stdout.finish();

  const verdict = judge(py.FS, status, stderr.render(), msg.maxOutputBytes);
  if (verdict.reason) return withLog(failed(verdict.reason));
  const bytes = py.FS.readFile(`${OUTPUT}/${verdict.name}`);
  const sha256 = harness.get('sha256')(bytes);
  return withLog({ message: { type: 'done', name: verdict.name, output: bytes.buffer, sha256 }, transfer: [bytes.buffer] });
}

/** Why a run message cannot be carried out, or null. */
function checkRun(msg) {
  const { files, entrypoint, inputName, input, env, maxOutputBytes, ffmpegThreads } = msg;
  if (typeof files !== 'object' || files === null) return 'the task has no bundle files';
  for (const [name, text] of Object.entries(files)) {
    if (!isSafeFileName(name)) return `the bundle's file name ${JSON.stringify(name)} is not a plain file name`;
    if (typeof text !== 'string') return `the bundle's file ${name} is not text`;
  }
  if (!isSafeFileName(entrypoint) || !Object.hasOwn(files, entrypoint)) {
    return `entrypoint ${JSON.stringify(entrypoint)} is not among the bundle's files`;
  }
  if (!isSafeFileName(inputName)) return `the chunk's file name ${JSON.stringify(inputName)} is not a plain file name`;
  if (!(input instanceof ArrayBuffer)) return 'the chunk is not an ArrayBuffer';
  if (typeof env !== 'object' || env === null || Object.values(env).some((v) => typeof v !== 'string')) {
    return 'the environment must map names to strings';
  }
  if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 0) return 'maxOutputBytes must be a whole number of bytes';
  if (ffmpegThreads !== undefined && typeof ffmpegThreads !== 'boolean') return 'ffmpegThreads must be true or false';
  // The page asks for the core its probe found, which is never the threaded one on a page that
  // cannot run it; asked for anyway, the run fails rather than give the other core's bytes.
  if (ffmpegThreads && !THREADED) return 'the multi-threaded ffmpeg.wasm was asked for, but this page cannot run it (not cross-origin isolated, or no JSPI)';
  return null;
}

/** As Bundle::is_safe_file_name: a plain name that stays inside its directory. */
function isSafeFileName(name) {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..'
    && !/[/\\\0]/.test(name) && encoder.encode(name).length <= RULES.max_file_name_bytes;
}

/** The script's environment besides the page's IDLEGRID_* variables: the native worker's,
 * without PATH (there are no programs to find). Python reads the PYTHON* ones as it starts. */
function baseEnv() {
  return { HOME: SCRATCH, TMPDIR: SCRATCH, ...RULES.script_env };
}

/** The glue of ffmpeg.wasm's threaded core (`threaded`) or single-threaded one, the core's
 * factory: a promise of {factory, dir, stackRestore} (`dir` its directory, `stackRestore` the
 * name of the core's export that sets its stack pointer, read from the glue's text: see
 * FFMPEG_STACK_BYTES), or of the Error importing it failed with. Each is imported once, when
 * first asked for. */
function ffmpegGlue(threaded) {
  const kind = threaded ? 'ffmpeg_mt' : 'ffmpeg';
  glues[kind] ??= runtimeDirs.then(async (dirs) => {
    const url = new URL('ffmpeg-core.js', dirs[kind]);
    const text = fetchNow(url).then((r) => {
      if (!r.ok) throw new Error(`GET ${url.pathname}: HTTP ${r.status}`);
      return r.text();
    });
    const [glue, source] = await Promise.all([import(url.href), text]);
    return { factory: glue.default, dir: dirs[kind], stackRestore: stackRestoreExport(source, url) };
  }).catch((err) => err);
  return glues[kind];
}
const glues = {};

/** The name of the core's stackRestore export in its glue's text (minified: the glue calls it
 * as `Module["asm"]["Ea"]`, or in later Emscriptens `wasmExports["Ea"]`). */
function stackRestoreExport(source, url) {
  const found = source.match(/\bstack_?[Rr]estore\s*=\s*(?:function\s*\(\)\s*\{\s*return\s*\(\s*[\w$]+\s*=\s*)?(?:Module\s*\[\s*["']asm["']\s*\]|wasmExports)\s*\[\s*["']([\w$]+)["']\s*\]/);
  if (!found) throw new Error(`${url.pathname} names no stackRestore export: FFmpeg cannot be given a stack of its own`);
  return found[1];
}

/** Loads Pyodide with baseEnv() (it creates HOME and starts there); what it prints while
 * starting goes to `stderr`. */
async function startPython(stderr) {
  const dir = (await runtimeDirs).pyodide;
  const { loadPyodide } = await import(new URL('pyodide.mjs', dir).href);
  const line = (text) => stderr.write(encoder.encode(`${text}\n`));
  // When its WebAssembly cannot be fetched or compiled (a 404, a wrong MIME type, a CSP without
  // 'wasm-unsafe-eval'), Pyodide only logs the error with console.warn and never settles.
  const warn = console.warn;
  const failure = new Promise((_, reject) => {
    let failing = false;
    console.warn = (...args) => {
      warn.apply(console, args);
      if (failing) reject(new Error(`its WebAssembly failed to load: ${describe(args[0])}`));
      failing = args[0] === 'wasm instantiation failed!';
    };
  });
  try {
    return await Promise.race([
      // A copy: Pyodide adds to it (PYTHONINSPECT), which the script's environment must not get.
      loadPyodide({ indexURL: dir.href, env: baseEnv(), stdout: line, stderr: line }),
      failure,
    ]);
  } finally {
    console.warn = warn;
  }
}

/** The scratch directory: input/<inputName> (the page's buffer itself, not a copy), an empty
 * output/, and the bundle in app/. */
function prepareScratch(FS, msg) {
  for (const dir of ['input', 'output', 'app']) FS.mkdirTree(`${SCRATCH}/${dir}`);
  FS.writeFile(`${SCRATCH}/input/${msg.inputName}`, new Uint8Array(msg.input), { canOwn: true });
  for (const [name, text] of Object.entries(msg.files)) FS.writeFile(`${SCRATCH}/app/${name}`, text);
}

// What a script could use to reach beyond its own files: the network, the origin's storage,
// the page and other contexts. The runner took what it needs (post, SyncRequest, fetchNow,
// WorkerNow) beforehand.
const WAYS_OUT = [
  'fetch', 'XMLHttpRequest', 'WebSocket', 'WebSocketStream', 'WebTransport', 'EventSource',
  'indexedDB', 'caches', 'navigator', 'importScripts', 'Worker', 'SharedWorker',
  'BroadcastChannel', 'Notification', 'postMessage', 'close',
];

/** Removes WAYS_OUT from the worker's global scope: they live on the prototypes of `self`, so
 * deleting them there leaves the script (through Pyodide's `js` module) no way back to them. */
function lockDown() {
  for (const name of WAYS_OUT) {
    for (let owner = self; owner; owner = Object.getPrototypeOf(owner)) {
      if (Object.hasOwn(owner, name)) delete owner[name];
    }
    if (name in self) throw new Error(`cannot remove ${name} from the worker's global scope`);
  }
}

/** The outcome as natively (runner::judge): exit status 0 and exactly one regular file in
 * output/ within the size limit; otherwise a reason for the customer. */
function judge(FS, status, stderrTail, maxOutputBytes) {
  if (status !== 0) {
    const hint = stderrTail.includes('MemoryError') ? " (the browser's Python ran out of memory)" : '';
    return { reason: compose(`script exited with status ${status}`, stderrTail, hint) };
  }
  const found = FS.analyzePath(OUTPUT);
  if (!found.exists || !FS.isDir(found.object.mode)) return { reason: 'cannot read output/: the script removed it' };
  const names = FS.readdir(OUTPUT).filter((n) => n !== '.' && n !== '..').sort();
  if (names.length === 0) return { reason: 'script wrote no output (output/ is empty)' };
  if (names.length > 1) {
    const list = names.slice(0, 10).join(', ') + (names.length > 10 ? ', …' : '');
    return { reason: `output/ must hold exactly one file, found ${names.length}: ${list}` };
  }
  const [name] = names;
  const stat = FS.lstat(`${OUTPUT}/${name}`);
  if (FS.isLink(stat.mode)) return { reason: `output/${name} is a symbolic link; the output must be a regular file` };
  if (!FS.isFile(stat.mode)) return { reason: `output/${name} is not a regular file (a directory or special file)` };
  if (stat.size > maxOutputBytes) return { reason: `output is ${stat.size} bytes, over the ${maxOutputBytes}-byte limit` };
  return { name };
}

// ---------------------------------------------------------------------------------------------
// Probing the runtimes.

async function probe() {
  let py;
  try {
    py = await python;
  } catch (err) {
    return failed(compose(`cannot start the browser's Python (Pyodide): ${describe(err)}`, stderr.render(), ''));
  }
  // The probe runs no script: its Python needs no tools.
  const harness = await loadHarness(py, null);
  const message = {
    type: 'probed', python: harness.get('python_version')(), ffmpeg: null, ffmpegThreads: THREADED,
    benchmark: harness.get('benchmark')(RULES.benchmark_buffer_bytes, RULES.benchmark_ms),
  };
  let found = await ffmpegVersion(py.FS, THREADED);
  // A device where the threaded core cannot start (its 1 GiB of shared memory refused, too
  // many Workers) still runs the single-threaded one, and says so: its runs then use that one.
  if (THREADED && found.error) {
    message.ffmpegThreadsError = found.error;
    message.ffmpegThreads = false;
    found = await ffmpegVersion(py.FS, false);
  }
  // Natively a device without ffmpeg reports none, and gets no tasks needing it.
  if (found.error) message.ffmpegError = found.error;
  else message.ffmpeg = found.version;
  return { message };
}

/** `ffmpeg -version` with the threaded core (`threaded`) or the single-threaded one, started as
 * a task's run starts it: {version} or {error}. */
async function ffmpegVersion(pyFS, threaded) {
  const tools = new Tools(pyFS, await ffmpegGlue(threaded), threaded, {});
  const result = await tools.run('ffmpeg', ['-version'], '/', 'pipe', 'pipe');
  if (result.error || result.code !== 0) {
    return { error: result.error || lossy.decode(result.err).trim() || `ffmpeg -version exited with status ${result.code}` };
  }
  // As parse_ffmpeg_version: `ffmpeg version 5.1.4 Copyright ...` → `5.1.4`.
  const words = lossy.decode(result.out).split('\n', 1)[0].trim().split(/\s+/);
  if (words[0] === 'ffmpeg' && words[1] === 'version' && words[2]) return { version: words[2] };
  return { error: `unexpected ffmpeg -version output: ${words.join(' ')}` };
}

// ---------------------------------------------------------------------------------------------
// FFMPEG: ffmpeg.wasm runs in this worker when the script starts `ffmpeg` or `ffprobe` through
// `subprocess`. Like a process, every run gets a new instance of the core (compiled once), so
// nothing a run leaves in FFmpeg's globals, which ffmpeg.wasm does not fully reset, reaches the
// next; the instance runs on a stack of FFMPEG_STACK_BYTES, since the core's own is too small.
// The instance has a file system of its own: the scratch directory and any other existing
// file named in the arguments are copied into it at the same paths, and afterwards what the run
// created or changed in the scratch directory is copied back. Its stdout and stderr go where the
// script asked: inherited (the task's own, scanned for progress and kept for the failure
// reason), a pipe handed to the script afterwards, or nowhere. They are text, line by line.
//
// The program itself runs synchronously in this worker. Where the script can suspend (JSPI),
// what comes before it is awaited: the core is compiled with streaming compilation, which the
// browser keeps compiled in its cache for the next page, and with the multi-threaded core
// (THREADED) the new instance's threads are started. Its threads are a pool of Web Workers the
// core starts as it is created (32 of them, each loading the core's script and module); a thread
// the program creates takes one, which must have started already because this worker blocks
// while the program runs and a Worker cannot start before its creator returns to its event loop.
// runner.py waits for such a run with run_sync. Without JSPI the single-threaded core is fetched
// and compiled synchronously, the first time a script runs ffmpeg.
//
// Starting the threaded core can fail where the page allows it: its instance reserves 1 GiB of
// shared memory up front and starts 32 Workers, which a phone or a browser short of memory may
// refuse. The probe starts it as a run does; if that fails, it starts the single-threaded core
// instead and says so (ffmpegThreads false, ffmpegThreadsError why), and the page's runs then
// ask for that core (the run message's ffmpegThreads).

/** The stack FFmpeg's main thread runs on, in bytes: as a native process's on Linux, where the
 * native worker's ffmpeg runs. ffmpeg.wasm's cores are built with Emscripten's default of 64 KiB,
 * which FFmpeg outgrows: in the single-threaded core, where everything runs on that one stack,
 * its MJPEG encoder with optimal Huffman tables (FFmpeg's default, which the video app's stills
 * use) reaches 95 KB down, and past the stack's end it overwrote the core's static data, so the
 * run crashed ("memory access out of bounds", "table index is out of bounds") or hung, depending
 * on the picture. (The threaded core's main thread reached 44 KB in the same runs.) Each
 * instance is given this much of its heap as its stack before it runs (giveStack), through the
 * core's stackRestore export, whose minified name the glue's text says (stackRestoreExport). Where
 * the stack lies changes no byte FFmpeg makes. */
const FFMPEG_STACK_BYTES = 8 << 20;

/** What ffmpeg.wasm's threaded core is told of the device's cores (it sizes FFmpeg's automatic
 * thread pools by them): the device's count, at most 8, so a run's threads never outnumber the
 * 32 Workers the core starts with. Which encoder threads a task uses is in its own arguments
 * (-threads), so this does not change its bytes. */
const THREAD_CORES = Math.min(CORES, 8);

class Tools {
  /** `glue` is what ffmpegGlue(threaded) gave, `threaded` whether it is the threaded core's;
   * `inherit` holds the task's own stdout and stderr writers. */
  constructor(pyFS, glue, threaded, inherit) {
    this.pyFS = pyFS;
    this.createCore = glue instanceof Error ? glue : glue.factory;
    this.dir = glue instanceof Error ? null : glue.dir;
    this.stackRestore = glue instanceof Error ? null : glue.stackRestore;
    this.threaded = threaded;
    this.inherit = inherit;
    this.module = null;
  }

  /** Runs `tool` with `args` in `cwd`; `outRoute` is 'inherit', 'pipe' or 'null', `errRoute`
   * also 'stdout'. Returns {code, out, err} (piped bytes, absent when not piped), or {error}
   * when ffmpeg.wasm cannot start, which the script sees as a missing program; where the script
   * can suspend, a promise of that. */
  run(tool, args, cwd, outRoute, errRoute) {
    const argv = Array.from(args, String);
    const runIn = (core) => {
      try {
        return this.runIn(core, tool, argv, cwd, outRoute, errRoute);
      } finally {
        // A process's threads end with it.
        if (this.threaded) core.PThread.terminateAllThreads();
      }
    };
    const cannot = (err) => ({ error: describe(err) });
    if (SUSPENDS) return this.instantiateAsync().then(runIn, cannot);
    let core;
    try {
      core = this.instantiate();
    } catch (err) {
      return cannot(err);
    }
    return runIn(core);
  }

  runIn(core, tool, argv, cwd, outRoute, errRoute) {
    const out = new Sink(outRoute, this.inherit.stdout);
    const err = errRoute === 'stdout' ? out : new Sink(errRoute, this.inherit.stderr);
    core.setLogger(({ type, message }) => {
      // ffmpeg.wasm's exit() records the status, then aborts, which Emscripten reports: not news.
      if (type === 'stderr' && message === 'Aborted()') return;
      (type === 'stdout' ? out : err).write(encoder.encode(`${message}\n`));
    });
    this.copyIn(core.FS, argv, cwd);
    const code = runMain(core, tool, argv, err);
    this.copyOut(core.FS);
    return { code, out: out.bytes(), err: err === out ? undefined : err.bytes() };
  }

  /** A new instance of the single-threaded core, synchronously: the module is fetched and
   * compiled on first use (a worker may block), so the script's call needs no await. */
  instantiate() {
    if (typeof this.createCore !== 'function') throw this.createCore;
    if (!this.module) {
      const url = new URL('ffmpeg-core.wasm', this.dir);
      const request = new SyncRequest();
      request.open('GET', url, false);
      request.responseType = 'arraybuffer';
      request.send();
      if (request.status !== 200) throw new Error(`GET ${url.pathname}: HTTP ${request.status}`);
      this.module = new WebAssembly.Module(request.response);
    }
    const { core, failed, exports } = this.newCore(this.module);
    this.createCore(core).catch(() => {});
    failed();
    if (!core.calledRun) throw new Error('ffmpeg.wasm did not start');
    this.giveStack(core, exports());
    return core;
  }

  /** A new instance of the core, ready to run: the module compiled once by streaming (kept
   * compiled by the browser's cache), and for the threaded core its thread pool started. */
  async instantiateAsync() {
    if (typeof this.createCore !== 'function') throw this.createCore;
    if (!this.module) {
      this.module = compileStreaming(new URL('ffmpeg-core.wasm', this.dir));
      // A failure is not kept: the next run tries again.
      this.module.catch(() => { this.module = null; });
    }
    const module = await this.module;
    const { core, failed, exports } = this.newCore(module);
    if (!this.threaded) {
      this.createCore(core).catch(() => {});
      failed();
      if (!core.calledRun) throw new Error('ffmpeg.wasm did not start');
      this.giveStack(core, exports());
      return core;
    }
    // The core starts its thread pool's Workers as it is created, with the global Worker, which
    // the script's lockDown took away: it is lent back for that call only (the script is not
    // running meanwhile; it waits for this).
    const lent = !('Worker' in self);
    if (lent) self.Worker = WorkerNow;
    try {
      let ready;
      try {
        ready = this.createCore(core);
      } finally {
        if (lent) delete self.Worker;
      }
      // Its failure is awaited below, unless a thread's comes first.
      ready.catch(() => {});
      failed();
      // The core is ready when every Worker has loaded it; one that cannot (its script missing)
      // would leave it waiting for ever, so its error ends the wait (in place of the core's own
      // handler, which throws it at this worker's top level, where it would end the task).
      const failedThread = new Promise((_, reject) => {
        for (const worker of core.PThread?.unusedWorkers ?? []) {
          worker.onerror = (event) => {
            event.preventDefault();
            reject(new Error(`a thread of ffmpeg.wasm failed to start: ${event.message || 'its Worker did not load'}`));
          };
        }
      });
      await Promise.race([ready, failedThread]);
      this.giveStack(core, exports());
    } catch (err) {
      // Whatever of the thread pool did start goes, so that a failed start (its shared memory
      // refused, say) holds none of the device's memory while the single-threaded core runs.
      core.PThread?.terminateAllThreads();
      throw err;
    }
    return core;
  }

  /** Moves the stack of `core` (its instance's `exports`), ready and not yet running, to
   * FFMPEG_STACK_BYTES of its heap. */
  giveStack(core, exports) {
    const restore = exports?.[this.stackRestore];
    // stackRestore(sp): one parameter (a WebAssembly function's length is its parameter count).
    if (typeof restore !== 'function' || restore.length !== 1) {
      throw new Error(`ffmpeg.wasm has no stackRestore export named ${JSON.stringify(this.stackRestore)}`);
    }
    const base = core._malloc(FFMPEG_STACK_BYTES);
    if (!base) throw new Error(`ffmpeg.wasm cannot allocate a stack of ${FFMPEG_STACK_BYTES} bytes`);
    // The stack grows down from its top, 16-byte aligned as the ABI wants.
    restore(Math.floor((base + FFMPEG_STACK_BYTES) / 16) * 16);
  }

  /** An Emscripten module object for `module`, instantiated synchronously when the factory is
   * called (the object becomes the module), `failed()`, which throws what instantiating it
   * threw, and `exports()`, the instance's exports once it is made. */
  newCore(module) {
    let failure = null;
    let exports = null;
    const { threaded } = this;
    const core = {
      instantiateWasm(imports, receive) {
        try {
          if (threaded) pinCores(imports);
          const instance = new WebAssembly.Instance(module, imports);
          ({ exports } = instance);
          receive(instance, module);
          return instance.exports;
        } catch (err) {
          failure = err;
          throw err;
        }
      },
    };
    return { core, failed: () => { if (failure) throw failure; }, exports: () => exports };
  }

  copyIn(FS, argv, cwd) {
    FS.mkdirTree(SCRATCH);
    for (const file of walk(this.pyFS, SCRATCH)) {
      if (file.dir) FS.mkdirTree(file.path);
      else this.copyFile(file.path, FS);
    }
    for (const arg of argv) {
      const path = arg.startsWith('/') ? arg : `${cwd}/${arg}`;
      const found = this.pyFS.analyzePath(path);
      if (found.exists && !found.path.startsWith(`${SCRATCH}/`) && this.pyFS.isFile(found.object.mode)) {
        FS.mkdirTree(found.parentPath);
        this.copyFile(found.path, FS);
      }
    }
    FS.mkdirTree(cwd);
    FS.chdir(cwd);
  }

  /** Copies one file into the core's file system, dated 0 so that any write shows (copyOut). */
  copyFile(path, FS) {
    FS.writeFile(path, this.pyFS.readFile(path), { canOwn: true });
    FS.utime(path, 0, 0);
  }

  copyOut(FS) {
    for (const file of walk(FS, SCRATCH)) {
      if (file.dir) this.pyFS.mkdirTree(file.path);
      else if (+file.stat.mtime !== 0) this.pyFS.writeFile(file.path, FS.readFile(file.path), { canOwn: true });
    }
  }
}

/** `url`'s module, compiled as it downloads: V8 caches the compiled code of modules compiled
 * this way beside the file in the browser's cache (not of those compiled from bytes), so a
 * returning page need not compile all of it again. */
async function compileStreaming(url) {
  const response = await fetchNow(url);
  if (!response.ok) throw new Error(`GET ${url.pathname}: HTTP ${response.status}`);
  return WebAssembly.compileStreaming(response);
}

/** Answers the threaded core's question of how many cores there are with THREAD_CORES: its
 * own answer would read `navigator`, which lockDown removes. The import is found by its
 * function's name, since the glue's import names are minified. */
function pinCores(imports) {
  for (const table of Object.values(imports)) {
    for (const [name, value] of Object.entries(table)) {
      if (typeof value === 'function' && value.name === '_emscripten_num_logical_cores') table[name] = () => THREAD_CORES;
    }
  }
}

/** Runs the tool's main() in `core`; returns its exit status as natively: what it gave exit()
 * (which ffmpeg.wasm records in `ret` before it aborts), what main() returned, or -6 (killed by
 * SIGABRT) when it aborted or trapped without recording one. */
function runMain(core, tool, argv, err) {
  // ffmpeg as a script's subprocess has an empty stdin (natively /dev/null): never read it.
  const all = tool === 'ffmpeg' ? [tool, '-nostdin', ...argv] : [tool, ...argv];
  const main = tool === 'ffmpeg' ? core._ffmpeg : core._ffprobe;
  let returned;
  try {
    returned = main(all.length, core.stringsToPtr(all));
  } catch (crash) {
    if (core.ret === -1) {
      err.write(encoder.encode(`${tool} (ffmpeg.wasm) crashed: ${describe(crash)}\n`));
      return -6;
    }
  }
  return core.ret !== -1 ? core.ret : returned;
}

/** Where one of a tool's output streams goes. */
class Sink {
  constructor(route, inherited) {
    this.route = route;
    this.inherited = inherited;
    this.chunks = [];
  }

  write(bytes) {
    if (this.route === 'inherit') this.inherited(bytes);
    else if (this.route === 'pipe') this.chunks.push(bytes);
  }

  /** What went to the pipe, or undefined (an absent attribute in Python) when not piped. */
  bytes() {
    return this.route === 'pipe' ? concat(this.chunks) : undefined;
  }
}

/** Every directory and regular file under `root` (if it exists), parents first; symbolic
 * links and special files are skipped. */
function* walk(FS, root) {
  if (!FS.analyzePath(root).exists) return;
  for (const name of FS.readdir(root)) {
    if (name === '.' || name === '..') continue;
    const path = `${root}/${name}`;
    const stat = FS.lstat(path);
    if (FS.isDir(stat.mode)) {
      yield { path, dir: true, stat };
      yield* walk(FS, path);
    } else if (FS.isFile(stat.mode)) {
      yield { path, dir: false, stat };
    }
  }
}

function concat(chunks) {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

// ---------------------------------------------------------------------------------------------
// The task's stdout (progress) and stderr (its tail), as runner.rs reads them.

/** Finds `idlegrid:progress <fraction>` lines and tells the page. */
class ProgressScanner {
  constructor() {
    this.line = new Uint8Array(RULES.max_stdout_line_bytes);
    this.length = 0;
    this.overlong = false;
    this.latest = null;
    this.posted = null;
    this.postedAt = -Infinity;
  }

  write(bytes) {
    for (const byte of bytes) {
      if (byte === 0x0a) this.endLine();
      else if (this.overlong) continue;
      else if (this.length < this.line.length) this.line[this.length++] = byte;
      else {
        this.overlong = true;
        this.length = 0;
      }
    }
  }

  endLine() {
    const fraction = this.overlong ? null : parseProgress(this.line.subarray(0, this.length));
    this.length = 0;
    this.overlong = false;
    if (fraction === null) return;
    this.latest = fraction;
    // Rate-limited: a script printing progress in a tight loop must not flood the page.
    if (performance.now() - this.postedAt >= PROGRESS_INTERVAL_MS) this.report();
  }

  /** At the end: the last line without a newline, and the latest fraction if not yet sent. */
  finish() {
    this.endLine();
    this.report();
  }

  report() {
    if (this.latest === null || this.latest === this.posted) return;
    post({ type: 'progress', fraction: this.latest });
    this.posted = this.latest;
    this.postedAt = performance.now();
  }
}

/** The fraction of a progress line, clamped to 0..1, or null for any other line. */
function parseProgress(bytes) {
  let text;
  try {
    text = strict.decode(bytes).trim();
  } catch {
    return null;
  }
  const prefix = RULES.progress_prefix;
  if (!text.startsWith(prefix)) return null;
  const number = text.slice(prefix.length).trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(number)) return null;
  const fraction = Number(number);
  return Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : null;
}

/** Keeps the last stderr_tail_bytes of stderr (plus one, to know whether any was dropped). */
class Tail {
  constructor() {
    this.kept = new Uint8Array(0);
  }

  write(bytes) {
    const keep = RULES.stderr_tail_bytes + 1;
    const joined = bytes.length >= keep ? bytes : concat([this.kept, bytes]);
    this.kept = joined.slice(Math.max(0, joined.length - keep));
  }

  /** As render_tail: trimmed, starting with … when earlier output was dropped. */
  render() {
    const max = RULES.stderr_tail_bytes;
    const truncated = this.kept.length > max;
    const bytes = truncated ? this.kept.subarray(this.kept.length - max) : this.kept;
    // The cut may split a character; drop its remains rather than show a replacement sign.
    const text = lossy.decode(bytes).replace(/^\uFFFD+/, '').trim();
    return truncated ? `…${text}` : text;
  }
}

/** As runner.rs compose: `<head>: <stderr tail><hint>` within max_reason_bytes, the tail
 * shortened from its start, because its end (the exception) is what the customer needs. */
function compose(head, stderrTail, hint) {
  if (!stderrTail) return `${head}${hint}`;
  const room = RULES.max_reason_bytes - encoder.encode(`${head}: …${hint}`).length;
  const tail = encoder.encode(stderrTail);
  if (tail.length <= room) return `${head}: ${stderrTail}${hint}`;
  let start = tail.length - Math.max(0, room);
  while (start < tail.length && (tail[start] & 0xc0) === 0x80) start += 1;
  const kept = lossy.decode(tail.subarray(start)).replace(/^…+/, '');
  return `${head}: …${kept}${hint}`;
}

/** `text` cut to at most `max` UTF-8 bytes, on a character boundary. */
function truncateBytes(text, max) {
  const bytes = encoder.encode(text);
  if (bytes.length <= max) return text;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end -= 1;
  return lossy.decode(bytes.subarray(0, end));
}

// ---------------------------------------------------------------------------------------------
// The Python side (runner.py), loaded before the script runs (so the script cannot change what
// it uses).

/** Runs runner.py, over `tools`, in a namespace of its own (not importable by the script);
 * returns it. */
async function loadHarness(py, tools) {
  const source = await harnessSource;
  py.registerJsModule('_idlegrid', { run_tool: (...args) => tools.run(...args) });
  const namespace = py.globals.get('dict')();
  py.runPython(source, { globals: namespace });
  return namespace;
}

/** The text at `url`, fetched now: the script's run takes `fetch` away. */
async function fetchText(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url.pathname}: HTTP ${response.status}`);
  return response.text();
}

// ---------------------------------------------------------------------------------------------
// Start-up: the runtimes and runner.py load as soon as the worker starts, before its message comes (so a page
// that creates the next task's worker ahead of time finds Python ready; loading takes seconds).
// A failure is reported when the message comes. The glue of the ffmpeg.wasm core this page
// usually runs (110-130 KB of JS) is imported now, the other one when a message asks for it,
// both before the script runs because a script calls ffmpeg synchronously; the core's 32 MB of
// WebAssembly is fetched only when a script does.

const rulesLoaded = fetchText(new URL('runner-rules.json', import.meta.url)).then((text) => {
  RULES = JSON.parse(text);
});
rulesLoaded.catch(() => {});
/** Where each runtime is: runtimes.json's directories (named by their versions) under RUNTIMES. */
const runtimeDirs = fetchText(new URL('runtimes.json', RUNTIMES)).then((text) => {
  const { dirs } = JSON.parse(text);
  if (!dirs?.pyodide || !dirs.ffmpeg || !dirs.ffmpeg_mt) {
    throw new Error('runtimes.json names no runtime directories: run scripts/browser-runtimes.sh again');
  }
  return { pyodide: new URL(dirs.pyodide, RUNTIMES), ffmpeg: new URL(dirs.ffmpeg, RUNTIMES), ffmpeg_mt: new URL(dirs.ffmpeg_mt, RUNTIMES) };
});
runtimeDirs.catch(() => {});
/** The task's stderr, from Pyodide's start on (kept for the failure reason and the task's log). */
const stderr = new Tail();
const python = rulesLoaded.then(() => startPython(stderr));
python.catch(() => {});
const harnessSource = fetchText(new URL('runner.py', import.meta.url));
harnessSource.catch(() => {});
// The glue of the core this page runs unless its probe found otherwise.
ffmpegGlue(THREADED);
