// A video job's facts for people: what the source is (size, frame rate, length, codecs, audio)
// and what the output is (codec, size, the renditions of an HLS ladder, its bytes), from the
// facts the partitioner recorded on the job (`facts` of `GET /v1/jobs/{id}`), with the raw
// JSON behind a toggle for whoever wants every field.

import { counted, facts, formatBytes, formatDuration, h, lines } from './dom.js';

/** Codec names as people know them; any other is shown as FFprobe names it. */
const CODECS = {
  h264: 'H.264', hevc: 'H.265 (HEVC)', vp8: 'VP8', vp9: 'VP9', av1: 'AV1', mpeg4: 'MPEG-4 Part 2',
  mpeg2video: 'MPEG-2', prores: 'ProRes', aac: 'AAC', mp3: 'MP3', opus: 'Opus', vorbis: 'Vorbis',
};

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

/** The source's facts as [term, value] pairs; a pair whose facts are missing is left out. */
function sourcePairs(f) {
  const video = [f.codec ? codecName(f.codec) : null, isNumber(f.width) && isNumber(f.height) ? size(f.width, f.height) : null,
    isNumber(f.fps) ? fps(f.fps) : null, f.variable_frame_rate ? 'variable frame rate' : null].filter(Boolean).join(', ');
  let audio = null;
  if (isNumber(f.audio_streams)) {
    audio = f.audio_streams === 0 ? 'none'
      : `${counted(f.audio_streams, 'audio stream')}${isNumber(f.audio_duration) ? `, ${length(f.audio_duration)}` : ''}`;
  }
  return [
    video ? ['Video', video] : null,
    isNumber(f.duration) ? ['Duration', `${length(f.duration)}${isNumber(f.frames) ? ` (${counted(f.frames, 'frame')})` : ''}`] : null,
    audio === null ? null : ['Audio', audio],
    f.rotation ? ['Rotation', `${f.rotation}°`] : null,
    f.container ? ['Container', String(f.container)] : null,
  ];
}

/** The output's facts as [term, value] pairs. */
function outputPairs(f, job) {
  const o = f.output && typeof f.output === 'object' ? f.output : {};
  const video = [o.codec ? codecName(o.codec) : null, isNumber(o.width) && isNumber(o.height) ? size(o.width, o.height) : null,
    typeof o.audio === 'boolean' ? (o.audio ? 'with audio' : 'no audio') : null].filter(Boolean).join(', ');
  const renditions = f.hls && Array.isArray(f.hls.renditions) ? f.hls.renditions : null;
  return [
    video ? ['Video', video] : null,
    renditions ? ['HLS ladder', `${counted(renditions.length, 'rendition')}: ${renditions.map((r) => size(r.width, r.height)).join(', ')}`
      + (isNumber(f.hls.segment_seconds) ? `; ${length(f.hls.segment_seconds)} segments` : '')] : null,
    isNumber(f.video_chunks) ? ['Split into', `${counted(f.video_chunks, 'video chunk')}${f.split ? ` at ${f.split}` : ''}`] : null,
    ['Size', job.output ? formatBytes(job.output.size) : 'known when the job completes'],
  ];
}

/** The summary of a video-transcode job's facts, then its notes, then the raw JSON (closed). */
export function videoSummary(job) {
  const f = job.facts;
  const notes = Array.isArray(f.notes) ? f.notes : [];
  return h('div', { class: 'video-facts' },
    h('h4', {}, 'Source'), facts(sourcePairs(f)),
    h('h4', {}, 'Output'), facts(outputPairs(f, job)),
    notes.length ? [h('h4', {}, 'Notes'), h('ul', { class: 'plain' }, notes.map((n) => h('li', {}, String(n))))] : null,
    rawFacts(f));
}

/** Every fact as the API gives it, behind a toggle. */
function rawFacts(value) {
  return h('details', { class: 'raw-facts' },
    h('summary', {}, 'Raw facts (JSON)'),
    h('pre', { class: 'raw-json' }, lines(JSON.stringify(value, null, 2))));
}
