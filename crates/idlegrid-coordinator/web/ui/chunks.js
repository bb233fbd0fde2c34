// The chunk grid of a job: one square per chunk, coloured by its state, marked when retried.

import { h, replace } from './dom.js';

export const CHUNK_STATES = ['queued', 'running', 'validating', 'checking', 'done', 'failed'];

export function chunkGrid() {
  const summary = h('p', { class: 'chunk-summary' });
  const list = h('ol', { class: 'chunk-grid', 'aria-label': 'Chunks' });
  const legend = h('ul', { class: 'chunk-legend', 'aria-label': 'Legend' },
    CHUNK_STATES.map((s) => h('li', {}, h('span', { class: `chunk state-${s}`, 'aria-hidden': 'true' }), s)),
    h('li', {}, h('span', { class: 'chunk state-done retried', 'aria-hidden': 'true' }), 'retried (a failed attempt before)'));
  const el = h('div', { class: 'chunks' }, summary, list, legend);

  function render(tasks) {
    const counts = Object.fromEntries(CHUNK_STATES.map((s) => [s, 0]));
    let retried = 0;
    const items = tasks.map((task) => {
      counts[task.state] = (counts[task.state] || 0) + 1;
      const wasRetried = task.failures > 0;
      if (wasRetried) retried += 1;
      const progress = task.state === 'running' && task.progress !== null && task.progress !== undefined
        ? ` ${Math.floor(task.progress * 100)} %` : '';
      const waiting = task.state === 'checking' && task.waiting_for ? `, waiting for ${task.waiting_for}` : '';
      const words = `Chunk ${task.index + 1}: ${task.state}${progress}${waiting}${wasRetried ? `, retried (${task.failures} failed attempt${task.failures === 1 ? '' : 's'})` : ''}`;
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
    replace(summary, `${tasks.length} chunk${tasks.length === 1 ? '' : 's'}: `,
      CHUNK_STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(', ') || 'none yet',
      retried ? `; ${retried} retried` : '');
  }
  return { el, render };
}
