// A video job's facts for people: what the source is (size, frame rate, length, codecs, audio)
// and what the output is (codec, or the source's video copied; container; size; the audio
// tracks and subtitles it keeps; the renditions of an HLS ladder; its bytes), from the facts
// the partitioner recorded on the job (`facts` of `GET /v1/jobs/{id}`), with the raw JSON
// behind a toggle for whoever wants every field; and for a job with a quality target, the rate
// factor and quality each chunk's device reported (`facts.quality`, once the job is assembled);
// and the stills asked for (`facts.stills`: thumbnails, a poster), which make the output an archive.
// Everything from the facts is shown as text.

import { chunkNumber, counted, facts, formatBytes, formatDuration, h, lines } from './dom.js';

/** Codec names as people know them; any other is shown as FFprobe names it. */
const CODECS = {
  h264: 'H.264', hevc: 'H.265 (HEVC)', vp8: 'VP8', vp9: 'VP9', av1: 'AV1', mpeg4: 'MPEG-4 Part 2',
  mpeg2video: 'MPEG-2', prores: 'ProRes', aac: 'AAC', mp3: 'MP3', opus: 'Opus', vorbis: 'Vorbis',
  ac3: 'Dolby Digital (AC-3)', eac3: 'Dolby Digital Plus (E-AC-3)', flac: 'FLAC', alac: 'ALAC',
  subrip: 'SubRip (SRT)', ass: 'ASS', ssa: 'SSA', webvtt: 'WebVTT', mov_text: 'MP4 timed text',
  hdmv_pgs_subtitle: 'PGS (pictures)', dvd_subtitle: 'DVD (pictures)',
};

/** Output containers as people know them. */
const CONTAINERS = {
  mp4: 'MP4', mov: 'QuickTime (MOV)', mkv: 'Matroska (MKV)', webm: 'WebM', hls: 'HLS (playlists and segments, in a tar)',
};

/** The output's container; a streaming output packaged as CMAF (since DASH manifests came
 * with the HLS playlists) says it has both. */
function containerName(container, f) {
  if (container === 'hls' && f.hls && f.hls.packaging === 'cmaf') return 'CMAF: HLS playlists and a DASH manifest over the same segments, in a tar';
  const name = CONTAINERS[container] || String(container);
  return f.output && f.output.archive === true && container !== 'hls' ? `${name}, in a tar with its stills` : name;
}

function codecName(codec) {
  return CODECS[codec] || String(codec);
}

const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

/** "1280×720". */
function size(width, height) {
  return `${width}×${height}`;
}

/** A frame rate without noise: 25, 29.97, 23.976. */
function fps(rate) {
  return `${Number(rate.toFixed(3))} fps`;
}

/** A length in seconds, with its tenths under a minute ("4.0 s", "1 min 31 s"). */
function length(seconds) {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : formatDuration(seconds);
}

/** The languages of tracks, when any is tagged: " (eng, fra, no tag)"; else nothing. */
function languages(tracks) {
  if (!Array.isArray(tracks) || !tracks.some((t) => t && t.language)) return '';
  return ` (${tracks.map((t) => (t && t.language ? String(t.language) : 'no tag')).join(', ')})`;
}

/** The source's facts as [term, value] pairs; a pair whose facts are missing is left out. */
function sourcePairs(f) {
  const video = [f.codec ? codecName(f.codec) : null, isNumber(f.width) && isNumber(f.height) ? size(f.width, f.height) : null,
    isNumber(f.fps) ? fps(f.fps) : null, f.variable_frame_rate ? 'variable frame rate' : null].filter(Boolean).join(', ');
  let audio = null;
  if (isNumber(f.audio_streams)) {
    audio = f.audio_streams === 0 ? 'none'
      : `${counted(f.audio_streams, 'audio stream')}${isNumber(f.audio_duration) ? `, ${length(f.audio_duration)}` : ''}${languages(f.audio)}`;
  }
  const subtitles = Array.isArray(f.subtitles) && f.subtitles.length
    ? `${counted(f.subtitles.length, 'track')}${languages(f.subtitles)}` : null;
  return [
    video ? ['Video', video] : null,
    isNumber(f.duration) ? ['Duration', `${length(f.duration)}${isNumber(f.frames) ? ` (${counted(f.frames, 'frame')})` : ''}`] : null,
    audio === null ? null : ['Audio', audio],
    subtitles ? ['Subtitles', subtitles] : null,
    f.rotation ? ['Rotation', `${f.rotation}°`] : null,
    f.container ? ['Container', String(f.container)] : null,
  ];
}

const isTrack = (t) => t !== null && typeof t === 'object';

/** A track's language as the source tags it, or that it has none. */
function language(track) {
  return track.language ? String(track.language) : 'no language tag';
}

/** A track's place among the source's tracks of its kind, counted from 1. */
function sourceTrack(track) {
  return isNumber(track.source) ? `source track ${track.source + 1}` : null;
}

/** The audio tracks the output keeps, one line each: language, source track, length, start. */
function audioTracks(o) {
  const tracks = o.audio_tracks.filter(isTrack);
  if (tracks.length === 0) return 'none';
  const codec = o.audio_codec === 'copy' ? 'copied as they are' : o.audio_codec ? codecName(o.audio_codec) : null;
  return [
    [counted(tracks.length, 'track'), codec].filter(Boolean).join(', '),
    h('ul', { class: 'plain tracks' }, tracks.map((t) => h('li', {}, [language(t), sourceTrack(t),
      isNumber(t.duration) ? length(t.duration) : null,
      isNumber(t.offset) && Math.abs(t.offset) >= 0.001 ? `starts at ${t.offset.toFixed(3)} s` : null,
    ].filter(Boolean).join(' · ')))),
  ];
}

/** The subtitle tracks the output carries: language, source track, the source's format. */
function subtitleTracks(all) {
  const list = all.filter(isTrack);
  if (list.length === 0) return 'none';
  return [
    counted(list.length, 'track'),
    h('ul', { class: 'plain tracks' }, list.map((t) => h('li', {}, [language(t), sourceTrack(t),
      t.codec ? codecName(t.codec) : null].filter(Boolean).join(' · ')))),
  ];
}

/** Thumbnails a sprite sheet holds at most (10 × 10, as the coordinator tiles them). */
const SPRITE_TILES = 100;

/** The stills' facts as [term, value] pairs: the thumbnails (with the sprite sheets they are
 * tiled into) and the poster (the time asked for, and its frame counted from 1). */
function stillsPairs(f, job) {
  const stills = isObject(f.stills) ? f.stills : {};
  const t = isObject(stills.thumbnails) ? stills.thumbnails : null;
  const p = isObject(stills.poster) ? stills.poster : null;
  const thumbnails = t && [
    isNumber(t.count) ? `${counted(t.count, 'thumbnail')}${t.count > 0 ? ` in ${counted(Math.ceil(t.count / SPRITE_TILES), 'sprite sheet')}` : ''}` : 'thumbnails',
    isNumber(t.every) ? `one every ${Number(t.every.toFixed(3))} s` : null,
    isNumber(t.width) && isNumber(t.height) ? size(t.width, t.height) : null,
  ].filter(Boolean).join(', ');
  const poster = p && [
    isNumber(p.width) && isNumber(p.height) ? size(p.width, p.height) : null,
    job.params && isNumber(job.params.poster) ? `the frame at ${Number(job.params.poster.toFixed(3))} s` : null,
    isNumber(p.frame) ? `frame ${p.frame + 1} of the output` : null,
  ].filter(Boolean).join(', ');
  return [thumbnails ? ['Thumbnails', thumbnails] : null, poster ? ['Poster', poster] : null];
}

/** The output's facts as [term, value] pairs. */
function outputPairs(f, job) {
  const o = f.output && typeof f.output === 'object' ? f.output : {};
  const video = [o.codec ? codecName(o.codec) : null, o.video_copy === true ? 'copied as it is' : null,
    isNumber(o.width) && isNumber(o.height) ? size(o.width, o.height) : null,
    typeof o.audio === 'boolean' ? (o.audio ? 'with audio' : 'no audio') : null].filter(Boolean).join(', ');
  const renditions = f.hls && Array.isArray(f.hls.renditions) ? f.hls.renditions : null;
  return [
    video ? ['Video', video] : null,
    o.container ? ['Container', containerName(o.container, f)] : null,
    Array.isArray(o.audio_tracks) ? ['Audio', audioTracks(o)] : null,
    Array.isArray(o.subtitles) ? ['Subtitles', subtitleTracks(o.subtitles)] : null,
    renditions ? ['Streaming ladder', `${counted(renditions.length, 'rendition')}: ${renditions.map((r) => size(r.width, r.height)).join(', ')}`
      + (isNumber(f.hls.segment_seconds) ? `; ${length(f.hls.segment_seconds)} segments` : '')] : null,
    ...stillsPairs(f, job),
    isNumber(f.video_chunks) ? ['Split into', `${counted(f.video_chunks, 'video chunk')}${f.split ? ` at ${f.split}` : ''}`] : null,
    ['Size', job.output ? formatBytes(job.output.size) : 'known when the job completes'],
  ];
}

/** The quality metrics a target can use: the digits and unit a value of each is written with
 * (a hundredth of a dB, a ten-thousandth of SSIM: finer than what the search aims at). */
const METRICS = {
  psnr: { name: 'PSNR', digits: 2, unit: ' dB' },
  ssim: { name: 'SSIM', digits: 4, unit: '' },
};

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A number without trailing zeros: 40, 40.5, 0.97. */
const plain = (v) => String(Number(v.toFixed(4)));

/**
 * A quality target's outcome: a sentence (how many chunks came within the tolerance, and the
 * range of what their devices measured), then each chunk's rate factor and quality in a table
 * that scrolls inside its own box, so that hundreds of chunks leave the page as it is. The
 * rendition column is there only when the job has several.
 */
function qualityReport(q, f) {
  const metric = METRICS[q.metric] || { name: String(q.metric ?? '?'), digits: 3, unit: '' };
  const number = (v) => v.toFixed(metric.digits);
  const rows = (Array.isArray(q.chunks) ? q.chunks : []).filter(isObject);
  const values = rows.map((c) => c.value).filter(isNumber);
  const unread = rows.length - values.length;
  const renditions = new Set(rows.map((c) => c.rendition)).size > 1;
  const noun = `${renditions ? 'chunk encode' : 'chunk'}${rows.length === 1 ? '' : 's'}`;
  const target = isNumber(q.target) ? `${plain(q.target)}${metric.unit}` : '?';
  const parts = [`${metric.name} target ${target}`];
  if (isNumber(q.within) && isNumber(q.tolerance_db)) {
    parts.push(`: ${q.within} of ${rows.length} ${noun} within ${plain(q.tolerance_db)} dB${q.metric === 'ssim' ? ' (SSIM in decibels)' : ''}`);
  }
  if (values.length) {
    const [low, high] = [Math.min(...values), Math.max(...values)];
    parts.push(`, from ${number(low)} to ${number(high)}${metric.unit}`);
    parts.push(', as the devices measured them');
  }
  if (unread) parts.push(` (${unread === 1 ? 'the report of 1 chunk' : `the reports of ${unread} chunks`} could not be read)`);
  const sizes = f.hls && Array.isArray(f.hls.renditions) ? f.hls.renditions : [];
  const renditionName = (r) => {
    const size = isNumber(r) && sizes[r] && isNumber(sizes[r].width) && isNumber(sizes[r].height) ? ` (${sizes[r].width}×${sizes[r].height})` : '';
    return isNumber(r) ? `${r + 1}${size}` : '—';
  };
  const cell = (v, format) => (isNumber(v) ? format(v) : 'not read');
  return [
    h('p', { class: 'quality-summary' }, `${parts.join('')}.`),
    rows.length ? h('div', { class: 'table-wrap quality-chunks', tabindex: '0', role: 'region', 'aria-label': `${metric.name} of each chunk` },
      h('table', {},
        h('caption', { class: 'sr-only' }, `The rate factor and ${metric.name} of each chunk, as its device measured them`),
        h('thead', {}, h('tr', {}, ['Chunk', renditions ? 'Rendition' : null, 'Rate factor', metric.name].filter(Boolean)
          .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows.map((c) => h('tr', {},
          h('td', {}, isNumber(c.chunk) ? chunkNumber(c.chunk) : '—'),
          renditions ? h('td', {}, renditionName(c.rendition)) : null,
          h('td', {}, cell(c.crf, plain)),
          h('td', {}, cell(c.value, (v) => `${number(v)}${metric.unit}`))))))) : null,
  ];
}

/** The summary of a video-transcode job's facts, then its notes, then the raw JSON (closed). */
export function videoSummary(job) {
  const f = job.facts;
  const notes = Array.isArray(f.notes) ? f.notes : [];
  return h('div', { class: 'video-facts' },
    h('h4', {}, 'Source'), facts(sourcePairs(f)),
    h('h4', {}, 'Output'), facts(outputPairs(f, job)),
    isObject(f.quality) ? [h('h4', {}, 'Quality'), qualityReport(f.quality, f)] : null,
    notes.length ? [h('h4', {}, 'Notes'), h('ul', { class: 'plain' }, notes.map((n) => h('li', {}, String(n))))] : null,
    rawFacts(f));
}

/** Every fact as the API gives it, behind a toggle. */
function rawFacts(value) {
  return h('details', { class: 'raw-facts' },
    h('summary', {}, 'Raw facts (JSON)'),
    h('pre', { class: 'raw-json' }, lines(JSON.stringify(value, null, 2))));
}
