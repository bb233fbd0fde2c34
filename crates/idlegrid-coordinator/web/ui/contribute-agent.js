// The browser worker's agent: what `idlegrid worker` does natively (crates/idlegrid-worker/src/
// agent.rs), over the same Tasks API — lease one task, fetch its bundle and chunk, run it in a
// fresh Web Worker (runner.js: Pyodide, ffmpeg.wasm), heartbeat while it runs, upload or inline
// the output, report (with the task's log: the end of its script's stderr) — and politely: it
// stops taking work while any pause reason holds (the tab is hidden, the battery is low, the
// owner pressed Pause) and hands a running task back at once when one appears, or when the tab
// closes.
//
// Events (an EventTarget): 'change' whenever `snapshot()` would say something new; 'unlinked'
// when the coordinator no longer knows this device's token.

import { ApiError, api, errorFrom } from './api.js';

/** Longest wait for a task per lease request; the coordinator holds the request open. */
const LEASE_WAIT_MS = 20_000;
/** Largest output sent inline in the report (the coordinator's MAX_INLINE_OUTPUT). */
const MAX_INLINE_OUTPUT = 64 * 1024;
/** Pauses between failed calls to the coordinator: 1 s doubling to 30 s. */
const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000];
/** Tasks kept in the page's list of recent work. */
const RECENT = 10;

/** Calls the Tasks API with the device's token (POST unless `method` says otherwise). */
function call(token, path, { method = 'POST', ...options } = {}) {
  return api(path, { ...options, method, secret: token });
}

/** Bytes as base64, in slices (String.fromCharCode takes only so many arguments). */
function base64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

/**
 * Runs a message through a fresh runner Worker and resolves with its final answer
 * (`done`, `failed` or `probed`); `onProgress(fraction)` hears its progress. `stop(reason)` on
 * the returned handle ends it at once (the Worker is terminated) with `{type: 'stopped'}`.
 */
export function runInWorker(message, transfer = [], onProgress = () => {}) {
  const worker = new Worker('/ui/runner.js', { type: 'module' });
  let finish;
  const answer = new Promise((resolve) => { finish = resolve; });
  const end = (result) => { worker.terminate(); finish(result); };
  worker.onmessage = ({ data }) => {
    if (data?.type === 'progress') onProgress(data.fraction);
    else end(data);
  };
  worker.onerror = (event) => {
    event.preventDefault();
    end({ type: 'failed', reason: `the browser runner crashed: ${event.message || 'no message'}` });
  };
  worker.onmessageerror = () => end({ type: 'failed', reason: 'the browser runner sent a message that could not be read' });
  worker.postMessage(message, transfer);
  return { answer, stop: (reason) => end({ type: 'stopped', reason }) };
}

export class Agent extends EventTarget {
  /** `device`: {workerId, token, heartbeatSecs}; `ffmpegThreads`: the probe's, the core every
   * run must use (the one the device's capabilities name). */
  constructor(device, { ffmpegThreads } = {}) {
    super();
    this.device = device;
    this.ffmpegThreads = ffmpegThreads;
    this.pauses = new Map(); // reason key → words, e.g. 'owner' → 'paused by you'
    this.current = null; // {lease, job, progress, started, run, heartbeat}
    this.done = 0;
    this.failed = 0;
    this.recent = [];
    this.problem = null;
    this.me = null;
    this.stopped = false;
    this.wake = null; // aborts the lease poll or a pause's wait
    this.backoff = 0;
  }

  /** What the page shows. */
  snapshot() {
    const c = this.current;
    return {
      paused: [...this.pauses.values()],
      working: c ? { job: c.lease.job_id, chunk: c.lease.chunk_index, step: stepOf(c.lease), app: c.job.app, progress: c.progress } : null,
      done: this.done,
      failed: this.failed,
      recent: this.recent,
      problem: this.problem,
      me: this.me,
    };
  }

  changed() { this.dispatchEvent(new Event('change')); }

  /** Holds work for `key` (words say why) and hands back a running task at once. */
  pause(key, words) {
    const had = this.pauses.size > 0;
    this.pauses.set(key, words);
    if (!had) {
      this.wake?.abort();
      if (this.current) this.handBack('paused');
    }
    this.changed();
  }

  /** Lifts the pause for `key`; work starts again when none is left. */
  resume(key) {
    if (!this.pauses.delete(key)) return;
    if (this.pauses.size === 0) this.wake?.abort();
    this.changed();
  }

  /** Stops the running task and gives its lease back, now. */
  handBack(why) {
    const c = this.current;
    if (!c || c.handedBack) return;
    c.handedBack = true;
    c.run?.stop(why);
    this.report(c, { type: 'released' }).catch(() => { /* the lease expires instead */ });
  }

  /** The tab is closing: give the lease back with a request that outlives the page. */
  leaving() {
    this.stopped = true;
    const c = this.current;
    if (!c || c.handedBack) return;
    c.handedBack = true;
    c.run?.stop('the tab closed');
    call(this.device.token, '/v1/leases/report', {
      body: { reports: [{ lease_id: c.lease.lease_id, task_id: c.lease.task_id, outcome: { type: 'released' } }] },
      keepalive: true,
    }).catch(() => {});
  }

  /** Refreshes the device's record (results accepted, earnings). */
  async refresh() {
    try {
      this.me = await call(this.device.token, '/v1/workers/me', { method: 'GET' });
      this.changed();
    } catch (e) {
      this.trouble(e);
    }
  }

  /** Says what went wrong; tells the page when the device's token is no longer known. */
  trouble(e) {
    if (e instanceof ApiError && e.status === 401) {
      this.stopped = true;
      this.wake?.abort();
      this.dispatchEvent(new Event('unlinked'));
      return;
    }
    this.problem = e.message;
    this.changed();
  }

  /** The lease loop; returns when stopped. */
  async run() {
    this.refresh();
    const refresher = setInterval(() => this.refresh(), 30_000);
    try {
      while (!this.stopped) {
        this.wake = new AbortController();
        if (this.pauses.size > 0) {
          await sleep(3_600_000, this.wake.signal);
          continue;
        }
        let grant;
        try {
          grant = await call(this.device.token, '/v1/leases', {
            body: { max_tasks: 1, wait_ms: LEASE_WAIT_MS }, signal: this.wake.signal,
          });
          this.backoff = 0;
          if (this.problem) { this.problem = null; this.changed(); }
        } catch (e) {
          if (e.name === 'AbortError') continue;
          this.trouble(e);
          if (this.stopped) break;
          const wait = e instanceof ApiError && e.status === 429 ? 1000 : BACKOFF_MS[Math.min(this.backoff, BACKOFF_MS.length - 1)];
          this.backoff += 1;
          await sleep(wait, this.wake.signal);
          continue;
        }
        for (const lease of grant.leases) {
          const job = grant.jobs.find((j) => j.job_id === lease.job_id);
          await this.work(job, lease);
        }
      }
    } finally {
      clearInterval(refresher);
    }
  }

  /** Runs one leased task to its report. */
  async work(job, lease) {
    const c = { job, lease, progress: null, started: performance.now(), run: null, handedBack: false, lost: false, log: null };
    this.current = c;
    this.changed();
    c.heartbeat = setInterval(() => this.heartbeat(c), Math.max(1, this.device.heartbeatSecs) * 1000);
    try {
      const outcome = await this.execute(c);
      if (c.handedBack || c.lost) return;
      await this.report(c, outcome);
      const seconds = ((performance.now() - c.started) / 1000).toFixed(1);
      if (outcome.type === 'completed') this.done += 1; else this.failed += 1;
      this.remember(c, outcome.type === 'completed' ? `done in ${seconds} s` : `failed: ${outcome.reason}`);
      this.refresh();
    } catch (e) {
      if (!c.handedBack && !c.lost) {
        this.remember(c, `not reported: ${e.message}`);
        this.trouble(e);
      }
    } finally {
      clearInterval(c.heartbeat);
      this.current = null;
      this.changed();
    }
  }

  remember(c, words) {
    this.recent = [{ job: c.lease.job_id, chunk: c.lease.chunk_index, step: stepOf(c.lease), app: c.job.app, words }, ...this.recent].slice(0, RECENT);
  }

  /** Fetches what the task needs, runs it, and turns the runner's answer into a report outcome
   * (and keeps the task's log, the end of its script's stderr, in `c.log` for the report). */
  async execute(c) {
    const { job, lease } = c;
    const token = this.device.token;
    const auth = { Authorization: `Bearer ${token}` };
    const [bundle, input] = await Promise.all([
      fetch(`/v1/bundles/${job.bundle_sha256}?lease=${lease.lease_id}`, { headers: auth })
        .then(async (r) => { if (!r.ok) throw await errorFrom(r); return r.json(); }),
      fetch(`/v1/leases/${lease.lease_id}/input`, { headers: auth })
        .then(async (r) => { if (!r.ok) throw await errorFrom(r); return r.arrayBuffer(); }),
    ]);
    if (c.handedBack || c.lost) return { type: 'released' };
    const message = {
      type: 'run',
      files: bundle.files,
      // A step of the app (its reduce) runs another of the bundle's files; the runner
      // refuses a name that is not one of them.
      entrypoint: lease.script ?? bundle.manifest.entrypoint,
      inputName: lease.input_name,
      input,
      env: {
        IDLEGRID_PARAMS: JSON.stringify(job.params),
        IDLEGRID_TASK: JSON.stringify(lease.task_params ?? {}),
        IDLEGRID_TASK_ID: String(lease.task_id),
        IDLEGRID_CHUNK_INDEX: String(lease.chunk_index),
      },
      maxOutputBytes: job.limits.max_output_bytes,
      // The core the probe chose, so the bytes are those of the FFmpeg the capabilities name.
      ffmpegThreads: this.ffmpegThreads,
    };
    c.run = runInWorker(message, [input], (fraction) => { c.progress = fraction; this.changed(); });
    const timeout = setTimeout(() => c.run.stop('timeout'), job.limits.timeout_secs * 1000);
    const answer = await c.run.answer;
    clearTimeout(timeout);
    if (typeof answer.log === 'string' && answer.log) c.log = answer.log;
    if (answer.type === 'stopped') {
      if (answer.reason === 'timeout') return { type: 'failed', reason: `the script ran past its ${job.limits.timeout_secs} s timeout and was stopped` };
      return { type: 'released' };
    }
    if (answer.type !== 'done') return { type: 'failed', reason: answer.reason || 'the browser runner gave no reason' };
    const bytes = new Uint8Array(answer.output);
    if (bytes.length <= MAX_INLINE_OUTPUT) {
      return { type: 'completed', sha256: answer.sha256, size: bytes.length, inline_base64: base64(bytes) };
    }
    const put = await fetch(`/v1/leases/${lease.lease_id}/output`, {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': 'application/octet-stream', 'x-content-sha256': answer.sha256 },
      body: bytes,
    });
    if (!put.ok) throw await errorFrom(put);
    return { type: 'completed', sha256: answer.sha256, size: bytes.length };
  }

  /** Reports `outcome`; one of a task that ran (completed or failed) goes with its log, if any. */
  async report(c, outcome) {
    const item = { lease_id: c.lease.lease_id, task_id: c.lease.task_id, outcome };
    if (c.log && outcome.type !== 'released') item.log = c.log;
    try {
      await call(this.device.token, '/v1/leases/report', { body: { reports: [item] } });
    } catch (e) {
      // 409: the report was refused (the lease had expired or was taken back); nothing to redo.
      if (!(e instanceof ApiError && e.status === 409)) throw e;
    }
  }

  async heartbeat(c) {
    try {
      const reply = await call(this.device.token, '/v1/leases/heartbeat', {
        body: { leases: [{ lease_id: c.lease.lease_id, progress: c.progress }] },
      });
      if (reply.leases[0] && !reply.leases[0].held && !c.handedBack) {
        // Expired, reassigned or its job ended: stop working on it, report nothing.
        c.lost = true;
        c.run?.stop('lease lost');
        this.remember(c, 'stopped: the coordinator took the task back');
      }
    } catch (e) {
      this.trouble(e);
    }
  }
}

/** The step of the app's own a lease runs (`partition` or `reduce`, as its parameters say),
 * or null for a chunk. */
function stepOf(lease) {
  const step = lease.task_params && lease.task_params.step;
  return step === 'partition' || step === 'reduce' ? step : null;
}
