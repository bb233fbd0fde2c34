// The chunk grid of a job: one square per chunk, coloured by its state, marked when retried;
// below it, why the chunks that failed an attempt failed last (while they are retried, too).

import { chunkNumber, counted, h, replace } from './dom.js';

export const CHUNK_STATES = ['queued', 'running', 'validating', 'checking', 'done', 'failed', 'stopped'];

export function chunkGrid() {
  const summary = h('p', { class: 'chunk-summary' });
  const list = h('ol', { class: 'chunk-grid', 'aria-label': 'Chunks' });
  const legend = h('ul', { class: 'chunk-legend', 'aria-label': 'Legend' },
    CHUNK_STATES.map((s) => h('li', {}, h('span', { class: `chunk state-${s}`, 'aria-hidden': 'true' }), s)),
    h('li', {}, h('span', { class: 'chunk state-done retried', 'aria-hidden': 'true' }), 'retried (a failed attempt before)'));
  const failures = h('div', { class: 'chunk-failures' });
  const el = h('div', { class: 'chunks' }, summary, list, legend, failures);

  /** A chunk by its number; a task that runs a step of the app's own (its partition or
   * reduce script) by the step. */
  function taskName(task, total) {
    if (task.step === 'partition') return 'Partition step';
    if (task.step === 'reduce') return 'Reduce step';
    return `Chunk ${chunkNumber(task.index, total)}`;
  }

  /** `total`: the job's number of chunks, or null while its input is still being split. */
  function render(tasks, total) {
    const counts = Object.fromEntries(CHUNK_STATES.map((s) => [s, 0]));
    let retried = 0;
    const items = tasks.map((task) => {
      counts[task.state] = (counts[task.state] || 0) + 1;
      const wasRetried = task.failures > 0;
      if (wasRetried) retried += 1;
      const progress = task.state === 'running' && task.progress !== null && task.progress !== undefined
        ? ` ${Math.floor(task.progress * 100)} %` : '';
      const waiting = task.state === 'checking' && task.waiting_for ? `, waiting for ${task.waiting_for}` : '';
      const retriedWords = wasRetried ? `, retried (${counted(task.failures, 'failed attempt')})` : '';
      const words = `${taskName(task, total)}: ${task.state}${progress}${waiting}${retriedWords}`;
      const li = h('li', {
        class: `chunk state-${task.state}${wasRetried ? ' retried' : ''}`,
        title: words,
        dataset: { index: String(task.index), state: task.state, failures: String(task.failures || 0) },
      }, h('span', { class: 'sr-only' }, words));
      if (task.state === 'running' && typeof task.progress === 'number') {
        li.append(h('span', { class: 'chunk-fill', 'aria-hidden': 'true' }));
        li.style.setProperty('--fill', String(Math.max(0, Math.min(1, task.progress))));
      }
      return li;
    });
    replace(list, items);
    const failed = tasks.filter((task) => task.last_failure);
    replace(failures, failed.length === 0 ? [] : [
      h('h3', {}, failed.length === 1 ? 'Why a chunk failed' : `Why ${failed.length} chunks failed`),
      h('ul', { class: 'failure-list' }, failed.slice(0, 20).map((task) => h('li', {},
        h('span', {}, `${taskName(task, total)}, ${task.state === 'failed' ? 'failed' : `${counted(task.failures, 'failed attempt')} so far`}:`),
        h('pre', { class: 'failure-reason' }, task.last_failure)))),
      failed.length > 20 ? h('p', { class: 'muted' }, `…and ${failed.length - 20} more.`) : null,
    ].filter(Boolean));
    const steps = tasks.filter((task) => task.step).length;
    replace(summary, `${counted(tasks.length - steps, 'chunk')}${steps ? ` and ${counted(steps, 'step')}` : ''}: `,
      CHUNK_STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(', ') || 'none yet',
      retried ? `; ${retried} retried` : '');
  }
  return { el, render };
}
