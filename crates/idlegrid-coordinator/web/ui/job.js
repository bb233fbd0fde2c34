// One job: state, progress and ETA, facts, chunk grid, errors, output, cancel, logs, webhook
// deliveries.

import { api, missingEndpoint } from './api.js';
import { formatCredits, alertSlot, announce, badge, counts, facts, formatBytes, formatDuration, h, heading, replace, timeTag, uid } from './dom.js';
import { follow } from './sse.js';
import { chunkGrid } from './chunks.js';
import { durationText, jobProgress, oneTimeSecrets, percent, TERMINAL } from './jobs.js';
import { videoSummary } from './video-facts.js';
import { confirmDialog } from './dialog.js';
import { outputSection } from './player.js';
import { webhookSecretNote } from './newjob.js';
import { logsSection } from './joblogs.js';

export async function jobView(main, [idText], { isCurrent }) {
  const id = Number(idText);
  const title = heading(`Job ${id}`);
  main.append(title);
  const alerts = alertSlot();
  main.append(alerts.el);
  let job;
  try {
    job = await api(`/v1/jobs/${id}`);
  } catch (e) {
    alerts.show(e, 'The job could not be loaded');
    return undefined;
  }
  if (!isCurrent()) return undefined;
  // The name the customer gave (or the input's file name), as text.
  if (job.name) title.textContent = `Job ${id}: ${job.name}`;

  // Sections, built once and updated on each event.
  const progressId = uid('job-progress');
  const stateLine = h('p', { class: 'state-line' });
  const progress = h('progress', { id: progressId, max: 1 });
  const progressText = h('span', { class: 'progress-text' });
  const eta = h('span', { class: 'eta' });
  const progressRow = h('div', { class: 'progress-row' }, h('label', { for: progressId }, 'Progress'), progress, progressText, eta);
  const errorBox = h('div', { class: 'job-error' });
  const cancelButton = h('button', { type: 'button', class: 'danger', id: 'cancel-job' }, 'Cancel job');
  const runButton = h('button', { type: 'button', id: 'run-job', hidden: true }, 'Run job');
  const againButton = h('button', { type: 'button', class: 'secondary', id: 'run-again', hidden: true }, 'Run again');
  const waiting = h('p', { class: 'notice', hidden: true });
  const actions = h('div', { class: 'actions left' }, runButton, againButton, cancelButton);
  const summary = h('section', { class: 'card', 'aria-labelledby': 'summary-h' },
    h('h2', { id: 'summary-h', class: 'sr-only' }, 'Summary'),
    stateLine,
    progressRow, errorBox, waiting, actions);
  const secretSlot = h('div');
  const outputSlot = h('div');
  const factsBody = h('div');
  // What the partitioner found: drawn again only when it changes, so an open toggle in it stays
  // open (and keeps focus) while the job's events come in.
  const aboutBody = h('div');
  let aboutDrawn = null;
  const factsCard = h('section', { class: 'card', 'aria-labelledby': 'facts-h' }, h('h2', { id: 'facts-h' }, 'Facts'), factsBody, aboutBody);
  const countsBody = h('div');
  const grid = chunkGrid();
  const tasksAlerts = alertSlot();
  const chunksCard = h('section', { class: 'card', 'aria-labelledby': 'chunks-h' },
    h('h2', { id: 'chunks-h' }, 'Chunks'), countsBody, tasksAlerts.el, grid.el);
  // Loaded when opened, not on every event (joblogs.js).
  const logs = logsSection(id, { total: () => chunkTotal(job) });
  const hooksSlot = h('div');
  main.append(summary, secretSlot, outputSlot, chunksCard, logs.el, factsCard, hooksSlot);

  const secret = oneTimeSecrets.get(id);
  if (secret) {
    oneTimeSecrets.delete(id);
    secretSlot.append(webhookSecretNote(secret));
  }

  // Cancel after a confirmation.
  cancelButton.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Cancel job ${id}?`,
      text: 'Its chunks stop and its results are thrown away. This cannot be undone.',
      yes: 'Yes, cancel the job', no: 'No, keep it', yesId: 'confirm-cancel',
    });
    if (!ok) return;
    cancelButton.disabled = true;
    try {
      const cancelled = await api(`/v1/jobs/${id}/cancel`, { method: 'POST' });
      announce(`Job ${id} is ${cancelled.state}.`);
      update(cancelled);
    } catch (e) {
      alerts.show(e, 'The job could not be cancelled');
      cancelButton.disabled = false;
    }
  });
  runButton.addEventListener('click', async () => {
    runButton.disabled = true;
    try {
      update(await api(`/v1/jobs/${id}/run`, { method: 'POST' }));
      startFollowing();
    } catch (e) {
      alerts.show(e, 'The job could not be run');
    } finally {
      runButton.disabled = false;
    }
  });

  // Run again: a copy of the job with its input, run at once, shown on its own page.
  againButton.addEventListener('click', async () => {
    againButton.disabled = true;
    try {
      const copy = await api(`/v1/jobs/${id}/clone`, { method: 'POST' });
      await api(`/v1/jobs/${copy.id}/run`, { method: 'POST' });
      announce(`Job ${copy.id} runs job ${id} again.`);
      location.hash = `#/jobs/${copy.id}`;
    } catch (e) {
      alerts.show(e, 'The job could not be run again');
      againButton.disabled = false;
    }
  });

  // Progress rate for the ETA: samples of (time, fraction) over the last minute.
  const samples = [];
  /** The output section, once the job has completed ({ el, stop }). */
  let output = null;
  let lastState = job.state;
  let tasksTimer = null;
  let tasksLoading = false;
  let tasksUnavailable = false;
  let lastTasks = 0;
  let hooksLoading = false;

  function etaText(fraction) {
    const now = performance.now() / 1000;
    samples.push({ t: now, f: fraction });
    while (samples.length > 2 && now - samples[0].t > 60) samples.shift();
    const first = samples[0];
    const rate = now - first.t >= 2 ? (fraction - first.f) / (now - first.t) : 0;
    if (rate <= 0) return 'estimating the time left…';
    return `about ${formatDuration((1 - fraction) / rate)} left`;
  }

  function update(next) {
    job = next;
    const fraction = jobProgress(job);
    replace(stateLine, badge(job.state), ' ', h('span', {}, job.app), ' ',
      h('span', { class: 'muted' }, `version ${job.app_version}`));
    // A job that ended before its input was split has no progress to show, only its end.
    progressRow.hidden = fraction === null && TERMINAL.has(job.state);
    if (fraction === null) {
      progress.removeAttribute('value');
      progressText.textContent = job.state === 'created' ? 'waiting for the input…' : 'splitting the input…';
    } else {
      progress.value = fraction;
      progressText.textContent = percent(fraction);
    }
    eta.textContent = TERMINAL.has(job.state) || fraction === null || job.state === 'created' ? '' : ` · ${etaText(fraction)}`;
    if (job.state === 'failed' && job.error) {
      replace(errorBox, h('div', { class: 'alert', role: 'alert' }, h('strong', {}, 'The job failed: '), h('pre', { class: 'job-error-text' }, job.error)));
    } else {
      errorBox.replaceChildren();
    }
    cancelButton.hidden = TERMINAL.has(job.state);
    againButton.hidden = !TERMINAL.has(job.state);
    runButton.hidden = !(job.state === 'created' && job.input);
    waiting.hidden = job.state !== 'created';
    waiting.textContent = job.input
      ? 'The input is uploaded; the job waits to be run.'
      : 'This job waits for its input: pick the same file again on the New job page to finish its upload.';
    if (job.state !== lastState) {
      announce(`Job ${job.id} is ${job.state}.`);
      lastState = job.state;
      logs.jobChanged();
    }
    renderFacts();
    renderCounts();
    if (job.state === 'completed' && !output) {
      output = outputSection(job);
      replace(outputSlot, output.el);
    }
    loadTasks();
    loadHooks();
  }

  function renderCounts() {
    const c = job.chunks || {};
    replace(countsBody, counts([
      ['Chunks', c.total === null || c.total === undefined ? `${c.created} so far` : String(chunkTotal(job))],
      ...(c.steps ? [['Steps of the app’s own', String(c.steps)]] : []),
      ['Done', String(c.done)],
      ['Queued', String(c.queued)],
      ['Running', String(c.running)],
      ['Waiting for a check', String(c.checking ?? 0)],
      ['Results', String(c.results ?? '—')],
      ['Rejected results', String(c.rejected ?? '—')],
      ['Failed attempts', String(c.failed_attempts)],
      ['Failed chunks', String(c.failed)],
    ]));
  }

  function renderFacts() {
    const pairs = [
      ['App', `${job.app} ${job.app_version}`],
      ['Created', timeTag(job.created_at)],
      ['Started (run)', timeTag(job.submitted_at)],
      ['First chunk', timeTag(job.started_at)],
      ['Finished', timeTag(job.finished_at)],
      TERMINAL.has(job.state) ? ['Ran for', durationText(job)] : null,
      job.input ? ['Input', `${formatBytes(job.input.size)} · SHA-256 ${job.input.sha256}`] : null,
      job.output ? ['Output', `${formatBytes(job.output.size)} · SHA-256 ${job.output.sha256}`] : null,
      ['Tier', job.preferences && job.preferences.tier ? job.preferences.tier : 'standard'],
      job.verification ? ['Checks', job.verification.summary] : null,
      job.cost ? ['Cost', `${formatCredits(job.cost.charged)} charged of a quote of ${formatCredits(job.cost.quote)}`] : ['Cost', 'not priced yet (the quote is held when the input is split)'],
      ['Priority', String(job.preferences ? job.preferences.priority : 0)],
      job.params && Object.keys(job.params).length ? ['Parameters', h('code', {}, JSON.stringify(job.params))] : null,
      job.webhook ? ['Webhook', job.webhook.url] : null,
    ];
    replace(factsBody, facts(pairs));
    const about = JSON.stringify([job.facts, job.output]);
    if (about === aboutDrawn) return;
    aboutDrawn = about;
    if (!job.facts || typeof job.facts !== 'object') aboutBody.replaceChildren();
    else if (job.app === 'video-transcode') replace(aboutBody, h('h3', {}, 'About the video'), videoSummary(job));
    else replace(aboutBody, h('h3', {}, 'About the input'), factsList(job.facts));
  }

  async function loadTasks() {
    if (tasksUnavailable || tasksLoading) return;
    const now = performance.now();
    if (now - lastTasks < 1000 && !TERMINAL.has(job.state)) {
      if (!tasksTimer) tasksTimer = setTimeout(() => { tasksTimer = null; loadTasks(); }, 1000);
      return;
    }
    tasksLoading = true;
    lastTasks = now;
    try {
      const tasks = [];
      let from = null;
      for (let page = 0; page < 200; page += 1) {
        const answer = await api(`/v1/jobs/${id}/tasks${from === null ? '' : `?from=${from}`}`);
        tasks.push(...(answer.tasks || []));
        if (answer.next_from === null || answer.next_from === undefined) break;
        from = answer.next_from;
      }
      grid.render(tasks, chunkTotal(job));
      tasksAlerts.clear();
    } catch (e) {
      if (missingEndpoint(e)) {
        tasksUnavailable = true;
        replace(tasksAlerts.el, h('p', { class: 'muted' }, 'This coordinator does not list chunks yet.'));
      } else {
        tasksAlerts.show(e, 'The chunks could not be loaded');
      }
    } finally {
      tasksLoading = false;
    }
  }

  async function loadHooks() {
    if (!job.webhook || hooksLoading) return;
    hooksLoading = true;
    try {
      const answer = await api(`/v1/jobs/${id}/webhook/deliveries`);
      replace(hooksSlot, deliveriesTable(answer.events || []));
    } catch (e) {
      replace(hooksSlot, h('section', { class: 'card' }, h('h2', {}, 'Webhook deliveries'), h('div', { class: 'alert', role: 'alert' }, `The deliveries could not be loaded: ${e.message}`)));
    } finally {
      hooksLoading = false;
    }
  }

  let stop = null;
  function startFollowing() {
    if (stop || TERMINAL.has(job.state)) return;
    stop = follow(`/v1/jobs/${id}/events`, {
      onEvent: (name, data) => { if (name === 'job' && data && data.id === id) update(data); },
      onError: (e) => alerts.show(e, 'Live updates stopped'),
      shouldStop: () => TERMINAL.has(job.state),
    });
  }
  update(job);
  startFollowing();
  // Chunks change without the job changing (progress of a running chunk): poll while it runs.
  const poll = setInterval(() => { if (!TERMINAL.has(job.state)) loadTasks(); }, 3000);
  return () => {
    if (stop) stop();
    clearInterval(poll);
    if (tasksTimer) clearTimeout(tasksTimer);
    if (output) output.stop();
  };
}

function factsList(value) {
  const pairs = Object.entries(value).map(([key, v]) => [key.replace(/_/g, ' '), factValue(v)]);
  return facts(pairs);
}

function factValue(v) {
  if (v === null || v === undefined) return '—';
  if (Array.isArray(v)) {
    if (!v.length) return 'none';
    return h('ul', { class: 'plain' }, v.map((item) => h('li', {}, factValue(item))));
  }
  if (typeof v === 'object') return factsList(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

function deliveriesTable(events) {
  const rows = events.map((e) => {
    const attempts = e.attempts || [];
    const last = attempts[attempts.length - 1];
    let delivery;
    if (e.delivered_at) delivery = ['delivered ', timeTag(e.delivered_at)];
    else if (e.gave_up) delivery = 'gave up after too many failed attempts';
    else if (e.next_attempt_at) delivery = ['next attempt ', timeTag(e.next_attempt_at)];
    else delivery = 'waiting';
    const lastWords = last ? [
      last.status === null || last.status === undefined ? 'no answer' : `HTTP ${last.status}`,
      last.error || null,
      last.duration_ms !== undefined ? `${last.duration_ms} ms` : null,
    ].filter(Boolean).join(', ') : '';
    return h('tr', { dataset: { event: String(e.id), delivered: e.delivered_at ? 'yes' : 'no' } },
      h('td', {}, String(e.id)),
      h('td', {}, badge(e.state)),
      h('td', {}, timeTag(e.at)),
      h('td', { class: e.gave_up ? 'bad' : '' }, delivery),
      h('td', {}, String(attempts.length), last ? h('span', { class: 'muted' }, ` (last: ${lastWords})`) : null));
  });
  return h('section', { class: 'card', 'aria-labelledby': 'hooks-h' },
    h('h2', { id: 'hooks-h' }, 'Webhook deliveries'),
    events.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'deliveries' },
      h('caption', { class: 'sr-only' }, 'Each state change of the job and its delivery to the webhook'),
      h('thead', {}, h('tr', {}, ['Event', 'Job became', 'At', 'Delivery', 'Attempts'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))) : h('p', { class: 'muted' }, 'No deliveries yet.'));
}

/** How many chunks the job's input was cut into (its tasks less those of the app's own steps),
 * or null while it is being cut. */
function chunkTotal(job) {
  const c = job.chunks;
  if (!c || c.total === null || c.total === undefined) return null;
  return c.total - (c.steps || 0);
}
