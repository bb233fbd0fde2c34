// Output of a completed job: signed links (no Authorization header needed) for a download
// link and for the <video> element.
//
// A video with stills (thumbnails, a poster) is an archive (.tar) of the video and its pictures:
// the download is the archive, the player plays the video inside it (served alone by its own
// link), and the stills are shown beside it (stills.js).
//
// A streaming output (`"hls": true`) is CMAF: one set of fragmented-MP4 segments described by
// HLS playlists and by a DASH manifest. Browsers that play HLS themselves (Safari, iOS, and
// Chromium since its built-in HLS player) are given the playlist, with nothing to load; others
// (Firefox, older Chromium) play the DASH manifest through dash.js, which feeds the segments
// to the <video> element with Media Source Extensions. dash.js is one of the coordinator's
// browser runtimes (scripts/browser-runtimes.sh, served at /runtimes/ from a directory named
// by its version): the page imports it only when it has such an output to play, so no other
// page pays for its 750 KB. Under the dashboard's Content-Security-Policy this needs nothing
// new: the module is this origin's script, the manifest and segments are this origin's
// requests, and the media source reaches the <video> element as a blob: URL (media-src blob:).

import { api, ApiError, errorFrom, missingEndpoint, session } from './api.js';
import { alertSlot, h, replace, timeTag } from './dom.js';
import { stillsView } from './stills.js';

/** A runtimes directory as scripts/browser-runtimes.sh names them (`dashjs-5.2.1/`): nothing
 * else is imported, whatever runtimes.json says. */
const RUNTIME_DIR = /^[A-Za-z0-9._-]+\/$/;

/** Why the DASH player cannot be had from this coordinator (an Error with this name). */
const NOT_SERVED = 'DashPlayerNotServed';

let dashModule = null;

/**
 * dash.js's module, imported once per page load from the directory runtimes.json names. Fails
 * with an Error named NOT_SERVED when the coordinator serves no runtimes, or older ones
 * without dash.js; a failure is not kept, so renewing the links tries again.
 */
function loadDash() {
  if (!dashModule) {
    dashModule = (async () => {
      let runtimes;
      try {
        runtimes = await api('/runtimes/runtimes.json', { auth: false });
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) throw Object.assign(new Error(e.message), { name: NOT_SERVED });
        throw e;
      }
      const dir = runtimes && runtimes.dirs && runtimes.dirs.dashjs;
      if (typeof dir !== 'string' || !RUNTIME_DIR.test(dir)) {
        throw Object.assign(new Error('the runtimes this coordinator serves do not include dash.js'), { name: NOT_SERVED });
      }
      return import(`/runtimes/${dir}dash.mediaplayer.min.js`);
    })();
    dashModule.catch(() => { dashModule = null; });
  }
  return dashModule;
}

/** A dash.js error event as a sentence's end: its code and message, as text (the signed
 * link's path in it shortened to the file's name: the token says nothing to a person). */
function dashErrorText(event) {
  const error = event && event.error;
  if (!error) return 'the DASH player stopped';
  const message = typeof error.message === 'string' && error.message
    ? error.message.replace(/\S*\/v1\/links\/[^/\s]+\/hls\//g, '') : null;
  return `DASH player error ${error.code ?? '?'}${message ? `: ${message}` : ''}`;
}

/**
 * The player of a streaming output: the <video> element (native HLS or dash.js), a notice where
 * this browser cannot play it here, its errors as text, and links to the HLS playlist and the
 * DASH manifest. Returns { video, nodes, stop() }; stop() ends dash.js's downloads when the page
 * goes.
 */
function streamingPlayer(job, links) {
  const video = h('video', { controls: true, preload: 'metadata', playsinline: true, id: 'player', poster: links.poster, 'aria-label': `Output of job ${job.id}` });
  const notice = h('div', { class: 'player-notice' });
  const problem = alertSlot();
  const status = h('p', { class: 'muted small player-status', role: 'status', hidden: true });
  const say = (text) => {
    status.textContent = text;
    status.hidden = !text;
  };
  let player = null;
  let stopped = false;
  video.addEventListener('error', () => problem.show(`The video could not be played${video.error ? ` (${video.error.message || `error ${video.error.code}`})` : ''}.`));

  const playlistLinks = h('p', { class: 'muted small stream-links' },
    links.hls ? ['HLS playlist: ', h('a', { href: links.hls, id: 'hls-link' }, 'master.m3u8')] : null,
    links.hls && links.dash ? ' · ' : null,
    links.dash ? ['DASH manifest: ', h('a', { href: links.dash, id: 'dash-link' }, 'manifest.mpd')] : null);
  const cannotPlay = (why) => {
    video.hidden = true;
    say('');
    replace(notice, h('p', { class: 'notice' }, why, ' Play ',
      links.dash ? 'manifest.mpd or master.m3u8 (links below)' : 'master.m3u8 (link below)',
      ' with a player that can, or download the archive.'));
  };

  if (links.hls && video.canPlayType('application/vnd.apple.mpegurl')) {
    // The browser's own HLS player: nothing to load.
    video.src = links.hls;
    video.dataset.playback = 'hls';
  } else if (!links.dash) {
    // Packaged before streaming outputs had a DASH manifest: HLS is all there is.
    cannotPlay('This browser cannot play HLS itself, and this output has no DASH manifest (it was packaged before they were made).');
  } else if (!(window.MediaSource || window.ManagedMediaSource)) {
    cannotPlay('This browser plays neither HLS nor DASH (it has no Media Source Extensions).');
  } else {
    video.dataset.playback = 'dash';
    say('Loading the DASH player…');
    loadDash().then((dashjs) => {
      if (stopped) return;
      say('');
      player = dashjs.MediaPlayer().create();
      player.on(dashjs.MediaPlayer.events.ERROR, (event) => problem.show(`The video could not be played (${dashErrorText(event)}).`));
      // Subtitles (side-loaded WebVTT) are offered, not shown: off until chosen in the
      // player's captions menu, as the HLS master playlist has them (DEFAULT=NO). dash.js
      // would show the first; its tracks are hidden instead — not disabled, so dash.js keeps
      // their cues in them and a track chosen shows its cue at once, not at dash.js's next
      // cue-window update (it fills only tracks that are not disabled).
      player.on(dashjs.MediaPlayer.events.TEXT_TRACKS_ADDED, () => {
        for (const track of video.textTracks) {
          if (track.mode === 'showing') track.mode = 'hidden';
        }
      });
      player.initialize(video, links.dash, false);
    }).catch((e) => {
      if (stopped) return;
      if (e.name === NOT_SERVED) {
        cannotPlay('This browser cannot play HLS itself, and this coordinator does not serve the DASH player (its operator can install it with scripts/browser-runtimes.sh).');
      } else {
        say('');
        problem.show(`The DASH player could not be loaded (${e.message}).`);
      }
    });
  }
  return {
    video,
    nodes: [video, status, notice, problem.el, playlistLinks],
    stop() {
      stopped = true;
      if (player) player.destroy();
      player = null;
    },
  };
}

/** Whether a job's output is an archive (.tar): a streaming output, or a video with its stills. */
function isArchive(job) {
  const output = job.facts && job.facts.output;
  return Boolean(job.params && job.params.hls) || Boolean(output && output.archive === true);
}

function outputName(job, hls) {
  if (job.app === 'video-transcode') {
    const container = (job.params && job.params.container) || 'mp4';
    if (hls) return `job-${job.id}-hls.tar`;
    return `job-${job.id}.${isArchive(job) ? 'tar' : container}`;
  }
  return `job-${job.id}-output.txt`;
}

/** What an archive holds, for the words beside its download: "the video, thumbnails and poster". */
function archiveContents(job, hls) {
  const stills = (job.facts && job.facts.stills) || {};
  const parts = [hls ? 'the playlists and segments' : 'the video', stills.thumbnails ? 'thumbnails' : null, stills.poster ? 'poster' : null]
    .filter(Boolean);
  return parts.length < 2 ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

/** The <video> element of a video that is one file (not streamed), playing `src`. */
function filePlayer(job, src, poster) {
  const video = h('video', { controls: true, preload: 'metadata', playsinline: true, src, poster, id: 'player', 'aria-label': `Output of job ${job.id}` });
  const problem = alertSlot();
  video.addEventListener('error', () => problem.show(`The video could not be played${video.error ? ` (${video.error.message || `error ${video.error.code}`})` : ''}.`));
  return { video, nodes: [video, problem.el], stop() {} };
}

/**
 * The output section of a completed job: download link, and for video output a player and the
 * stills.
 * Returns { el, stop() }: stop() when the page goes, so a streaming player stops downloading.
 */
export function outputSection(job) {
  const alerts = alertSlot();
  const body = h('div', { class: 'output-body' }, h('p', { class: 'muted' }, 'Preparing the links…'));
  const el = h('section', { class: 'card', 'aria-labelledby': `output-${job.id}` },
    h('h2', { id: `output-${job.id}` }, 'Output'), alerts.el, body);
  const isVideo = job.app === 'video-transcode';
  const isHls = Boolean(job.params && job.params.hls);
  const archive = isArchive(job);

  /** The player and the stills shown, stopped when the links are renewed or the page goes. */
  let showing = [];
  const stopShowing = () => {
    for (const part of showing) part.stop();
    showing = [];
  };

  async function load() {
    alerts.clear();
    stopShowing();
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
    const size = job.output ? `${job.output.size.toLocaleString()} bytes` : null;
    parts.push(h('p', {},
      h('a', { class: 'button', id: 'download', href: links.download, download: outputName(job, isHls) },
        archive ? 'Download the archive (.tar)' : 'Download the output'),
      ' ', archive ? h('span', { class: 'muted' }, `(${[size, archiveContents(job, isHls)].filter(Boolean).join(': ')})`)
        : size ? h('span', { class: 'muted' }, `(${size})`) : null));
    parts.push(h('p', { class: 'muted small' }, 'Links valid until ', timeTag(links.expires_at), '. ',
      h('button', { type: 'button', class: 'linkish', onclick: load }, 'Renew the links')));
    let player = null;
    if (isVideo && isHls && (links.hls || links.dash)) {
      player = streamingPlayer(job, links);
    } else if (isVideo && !isHls) {
      // An archive is no video to play: its video has a link of its own.
      const src = archive ? links.video : links.download;
      if (src) player = filePlayer(job, src, links.poster);
    }
    if (player) showing.push(player);
    if (isVideo && (links.poster || links.thumbnails)) showing.push(stillsView(job, links, player ? player.video : null));
    for (const part of showing) parts.push(...part.nodes);
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
        if (isVideo && !archive) parts.push(h('video', { controls: true, src: url, id: 'player' }));
        replace(body, parts);
      } catch (e) {
        alerts.show(e, 'The output could not be downloaded');
        button.disabled = false;
      }
    } }, 'Fetch the output');
    replace(body, h('p', {}, button));
  }

  load();
  return { el, stop: stopShowing };
}
