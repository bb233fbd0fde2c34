// Output of a completed job: signed links (no Authorization header needed) for a download
// link and for the <video> element.

import { api, errorFrom, missingEndpoint, session } from './api.js';
import { alertSlot, h, replace, timeTag } from './dom.js';

function outputName(job, hls) {
  if (job.app === 'video-transcode') {
    const container = (job.params && job.params.container) || 'mp4';
    return `job-${job.id}${hls ? '-hls.tar' : `.${container}`}`;
  }
  return `job-${job.id}-output.txt`;
}

/** The output section of a completed job: download link, and a player for video output. */
export function outputSection(job) {
  const alerts = alertSlot();
  const body = h('div', { class: 'output-body' }, h('p', { class: 'muted' }, 'Preparing the links…'));
  const el = h('section', { class: 'card', 'aria-labelledby': `output-${job.id}` },
    h('h2', { id: `output-${job.id}` }, 'Output'), alerts.el, body);
  const isVideo = job.app === 'video-transcode';
  const isHls = Boolean(job.params && job.params.hls);

  async function load() {
    alerts.clear();
    let links;
    try {
      links = await api(`/v1/jobs/${job.id}/links`, { method: 'POST' });
    } catch (e) {
      if (missingEndpoint(e)) { fallback(); return; }
      replace(body);
      alerts.show(e, 'The output links could not be made');
      body.append(h('button', { type: 'button', class: 'secondary', onclick: load }, 'Try again'));
      return;
    }
    const parts = [];
    parts.push(h('p', {},
      h('a', { class: 'button', id: 'download', href: links.download, download: outputName(job, isHls) }, 'Download the output'),
      ' ', job.output ? h('span', { class: 'muted' }, `(${job.output.size.toLocaleString()} bytes)`) : null));
    parts.push(h('p', { class: 'muted small' }, 'Links valid until ', timeTag(links.expires_at), '. ',
      h('button', { type: 'button', class: 'linkish', onclick: load }, 'Renew the links')));
    if (isVideo) {
      const src = isHls ? links.hls : links.download;
      if (src) {
        const video = h('video', { controls: true, preload: 'metadata', playsinline: true, src, id: 'player', 'aria-label': `Output of job ${job.id}` });
        const canPlay = isHls ? video.canPlayType('application/vnd.apple.mpegurl') : 'maybe';
        parts.push(video);
        if (!canPlay) parts.push(h('p', { class: 'notice' }, 'This browser cannot play HLS itself; download the archive and play master.m3u8 with a player that can.'));
        const problem = alertSlot();
        video.addEventListener('error', () => problem.show(`The video could not be played${video.error ? ` (${video.error.message || `error ${video.error.code}`})` : ''}.`));
        parts.push(problem.el);
        if (isHls) parts.push(h('p', { class: 'muted small' }, 'HLS playlist: ', h('a', { href: links.hls }, 'master.m3u8')));
      }
    }
    replace(body, parts);
  }

  /** A server without signed links: fetch the output with the secret and offer it as a file. */
  function fallback() {
    const button = h('button', { type: 'button', onclick: async () => {
      button.disabled = true;
      try {
        const response = await fetch(`/v1/jobs/${job.id}/output`, { headers: { Authorization: `Bearer ${session.secret}` } });
        if (!response.ok) throw await errorFrom(response);
        const url = URL.createObjectURL(await response.blob());
        const parts = [h('p', {}, h('a', { class: 'button', id: 'download', href: url, download: outputName(job, isHls) }, 'Save the output'))];
        if (isVideo && !isHls) parts.push(h('video', { controls: true, src: url, id: 'player' }));
        replace(body, parts);
      } catch (e) {
        alerts.show(e, 'The output could not be downloaded');
        button.disabled = false;
      }
    } }, 'Fetch the output');
    replace(body, h('p', {}, button));
  }

  load();
  return el;
}
