// A video output's stills on its job page: the poster, shown as a picture, and the thumbnails,
// as a strip that scrolls sideways, each a tile of a sprite sheet that moves the player to its
// time when chosen.
//
// The thumbnails' WebVTT index is a file of the output, made from what devices sent: it is read
// as data, never as markup. Only the cue timings (`HH:MM:SS.mmm --> HH:MM:SS.mmm`) and the cue
// texts `file#xywh=x,y,w,h` are taken, as numbers and a plain file name beside the index (the
// sprite sheet); every other line is left out.

import { counted, h, replace } from './dom.js';

/** Most characters of an index read: an hour of thumbnails a second is about 200 000. */
const MAX_INDEX_CHARS = 16 * 1024 * 1024;
/** Most cues taken from an index. */
const MAX_CUES = 100_000;
const TIMING = /^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$/;
const SPRITE_CUE = /^([A-Za-z0-9._-]+)#xywh=(\d{1,5}),(\d{1,5}),(\d{1,5}),(\d{1,5})$/;
/** Largest tile in the strip, in CSS pixels: wider or taller thumbnails are shown smaller. */
const TILE_WIDTH = 160;
const TILE_HEIGHT = 120;

/** Seconds of the cue timing `match` from its group `at` on (hours, minutes, seconds, ms). */
function timeAt(match, at) {
  const [hours, minutes, secs, ms] = match.slice(at, at + 4).map(Number);
  return hours * 3600 + minutes * 60 + secs + ms / 1000;
}

/**
 * The cues of a thumbnails index, by start time: { start, end, file, x, y, width, height }.
 * Null when the text is not WebVTT; cues in any other form are left out.
 */
export function parseThumbnailIndex(text) {
  const lines = String(text).split(/\r\n|\r|\n/);
  if (!/^\uFEFF?WEBVTT(?:[ \t].*)?$/.test(lines[0])) return null;
  const cues = [];
  for (let i = 1; i < lines.length - 1 && cues.length < MAX_CUES; i += 1) {
    const timing = TIMING.exec(lines[i]);
    if (!timing) continue;
    i += 1;
    const sprite = SPRITE_CUE.exec(lines[i]);
    // A name of dots alone would point out of the index's folder.
    if (!sprite || /^\.+$/.test(sprite[1])) continue;
    const [x, y, width, height] = sprite.slice(2).map(Number);
    const start = timeAt(timing, 1);
    const end = timeAt(timing, 5);
    if (width === 0 || height === 0 || end < start) continue;
    cues.push({ start, end, file: sprite[1], x, y, width, height });
  }
  return cues.sort((a, b) => a.start - b.start);
}

/** A time of the video as a clock: "0:07", "1:02:03", "0:01.5" when not on a whole second. */
export function clock(seconds) {
  const whole = Math.round(seconds);
  const exact = Math.abs(seconds - whole) < 0.05;
  const s = exact ? whole : Math.floor(seconds);
  const tenths = exact ? '' : `.${Math.min(9, Math.floor((seconds - s) * 10))}`;
  const mm = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${String(mm).padStart(2, '0')}:${ss}${tenths}` : `${mm}:${ss}${tenths}`;
}

const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

/** What the poster pictures, for its alt text and caption. */
function posterWords(job) {
  const at = job.params && isNumber(job.params.poster) ? job.params.poster : null;
  return at === null ? 'a frame of the video' : `the video’s frame at ${clock(at)}`;
}

/**
 * The stills of a completed video job whose links name them: the poster and the thumbnail
 * strip, which seeks `video` (the page's player, or null without one). Returns
 * { nodes, stop() }: stop() when the page goes, which ends loading the index.
 */
export function stillsView(job, links, video) {
  const nodes = [];
  const stopping = new AbortController();
  let observer = null;
  const stills = (job.facts && job.facts.stills) || {};

  if (links.poster) {
    const size = stills.poster || {};
    nodes.push(h('h3', { id: `poster-${job.id}` }, 'Poster'),
      h('figure', { class: 'poster' },
        h('img', {
          src: links.poster, id: 'poster', alt: `Poster of job ${job.id}: ${posterWords(job)}`,
          width: isNumber(size.width) ? size.width : null, height: isNumber(size.height) ? size.height : null,
        }),
        h('figcaption', {}, posterWords(job).replace(/^./, (c) => c.toUpperCase()),
          isNumber(size.width) && isNumber(size.height) ? `, ${size.width}×${size.height}. ` : '. ',
          h('a', { href: links.poster, download: `job-${job.id}-poster.jpg` }, 'Download the poster'))));
  }

  if (links.thumbnails) {
    const headingId = `thumbnails-${job.id}`;
    const status = h('p', { class: 'muted small thumbnails-status' }, 'Loading the thumbnails…');
    const strip = h('ol', { class: 'thumbnail-strip', 'aria-labelledby': headingId, hidden: true });
    nodes.push(h('h3', { id: headingId }, 'Thumbnails'), status, strip);
    loadIndex(links.thumbnails, stopping.signal).then((cues) => {
      if (cues === null) {
        status.textContent = 'The thumbnails’ index is not a WebVTT file this page can read.';
      } else if (!cues.length) {
        status.textContent = 'The thumbnails’ index lists no thumbnail this page can show.';
      } else {
        const every = stills.thumbnails && isNumber(stills.thumbnails.every) ? `, one every ${clockSeconds(stills.thumbnails.every)}` : '';
        status.textContent = `${counted(cues.length, 'thumbnail')}${every}.${video ? ' Choose one to go to its time in the video.' : ''}`;
        observer = drawStrip(strip, cues, links.thumbnails, video);
        strip.hidden = false;
      }
    }).catch((e) => {
      if (e.name !== 'AbortError') status.textContent = `The thumbnails could not be loaded (${e.message}).`;
    });
  }

  return {
    nodes,
    stop() {
      stopping.abort();
      if (observer) observer.disconnect();
    },
  };
}

/** "1 s", "2.5 s": an interval as the job asked for it. */
function clockSeconds(seconds) {
  return `${Number(seconds.toFixed(3))} s`;
}

/** The cues of the index at `url` (a signed link: no credentials), null if it is not WebVTT. */
async function loadIndex(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const text = await response.text();
  if (text.length > MAX_INDEX_CHARS) throw new Error('the index is too long');
  return parseThumbnailIndex(text);
}

/**
 * Fills `strip` with a button per cue: the thumbnail (its sprite sheet as the background, moved
 * to its tile) and its time. Sprite sheets load as their tiles come near the strip's visible
 * part, so a long video's hundreds of sheets are not all fetched at once. The tile of the
 * player's time is marked as it plays. Returns the observer that loads the sheets.
 */
function drawStrip(strip, cues, indexUrl, video) {
  const folder = new URL(indexUrl, location.href);
  // Each sheet's size, from its tiles: what scales it with them.
  const sheets = new Map();
  for (const cue of cues) {
    const sheet = sheets.get(cue.file) || { width: 0, height: 0 };
    sheet.width = Math.max(sheet.width, cue.x + cue.width);
    sheet.height = Math.max(sheet.height, cue.y + cue.height);
    sheets.set(cue.file, sheet);
  }
  const pictures = new Map();
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      // The file is a plain name (letters, digits, '.', '_', '-'), resolved beside the index.
      entry.target.style.backgroundImage = `url("${new URL(pictures.get(entry.target), folder).href}")`;
      observer.unobserve(entry.target);
    }
  }, { root: strip, rootMargin: '0px 100%' });

  const buttons = cues.map((cue) => {
    const scale = Math.min(1, TILE_WIDTH / cue.width, TILE_HEIGHT / cue.height);
    const sheet = sheets.get(cue.file);
    const picture = h('span', { class: 'thumbnail-picture' });
    picture.style.width = `${cue.width * scale}px`;
    picture.style.height = `${cue.height * scale}px`;
    picture.style.backgroundSize = `${sheet.width * scale}px ${sheet.height * scale}px`;
    picture.style.backgroundPosition = `${-cue.x * scale}px ${-cue.y * scale}px`;
    pictures.set(picture, cue.file);
    const time = h('span', { class: 'thumbnail-time' }, h('span', { class: 'sr-only' }, 'Go to '), clock(cue.start));
    return h('button', {
      type: 'button', class: 'thumbnail', disabled: !video, dataset: { start: String(cue.start) },
      onclick: () => {
        if (!video || video.hidden) return;
        video.currentTime = cue.start;
        mark();
      },
    }, picture, time);
  });
  replace(strip, buttons.map((b) => h('li', {}, b)));
  for (const picture of pictures.keys()) observer.observe(picture);

  /** Marks the thumbnail whose cue holds the player's time. */
  let marked = null;
  function mark() {
    const t = video.currentTime;
    let low = 0;
    let high = cues.length - 1;
    // The last cue starting at or before t (a binary search: cues are in order).
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if (cues[mid].start <= t + 0.001) low = mid;
      else high = mid - 1;
    }
    const button = buttons[low];
    if (button === marked) return;
    if (marked) marked.removeAttribute('aria-current');
    button.setAttribute('aria-current', 'time');
    marked = button;
  }
  if (video) {
    video.addEventListener('timeupdate', mark);
    video.addEventListener('seeked', mark);
    mark();
  }
  return observer;
}
