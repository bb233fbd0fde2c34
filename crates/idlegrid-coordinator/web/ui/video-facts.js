// A video job's facts for people: what the source is (size, frame rate, length, codecs, audio)
// and what the output is (codec, or the source's video copied; container; size; the audio
// tracks and subtitles it keeps; the renditions of an HLS ladder; its bytes), from the facts
// the partitioner recorded on the job (`facts` of `GET /v1/jobs/{id}`), with the raw JSON
// behind a toggle for whoever wants every field. Everything from the facts is shown as text.

import { counted, facts, formatBytes, formatDuration, h, lines } from './dom.js';

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

/** The output's facts as [term, value] pairs. */
function outputPairs(f, job) {
  const o = f.output && typeof f.output === 'object' ? f.output : {};
  const video = [o.codec ? codecName(o.codec) : null, o.video_copy === true ? 'copied as it is' : null,
    isNumber(o.width) && isNumber(o.height) ? size(o.width, o.height) : null,
    typeof o.audio === 'boolean' ? (o.audio ? 'with audio' : 'no audio') : null].filter(Boolean).join(', ');
  const renditions = f.hls && Array.isArray(f.hls.renditions) ? f.hls.renditions : null;
  return [
    video ? ['Video', video] : null,
    o.container ? ['Container', CONTAINERS[o.container] || String(o.container)] : null,
    Array.isArray(o.audio_tracks) ? ['Audio', audioTracks(o)] : null,
    Array.isArray(o.subtitles) ? ['Subtitles', subtitleTracks(o.subtitles)] : null,
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
