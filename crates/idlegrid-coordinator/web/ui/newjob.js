// New job: pick the app, fill in its settings, create → upload in parts → run → job page.
//
// The apps are those `/v1/apps` lists: built in (python-map with the customer's script,
// video-transcode with its video settings) and the latest version of each published app the
// account may run, which brings its own script and takes parameters and, as its fan-out cuts
// the input, lines per chunk (a text or a CSV), files per chunk (an archive) or parameter sets
// per chunk (a sweep). A published app's parameters are asked for by fields made from the JSON
// Schema its manifest gives (paramform.js), or written as JSON where fields cannot say them.

import { api, ApiError, openapi } from './api.js';
import { alertSlot, announce, field, formatBytes, formatCredits, formatDuration, formatTime, h, heading, replace, uid } from './dom.js';
import { appReference, isPublished, publisherText } from './apps.js';
import { forgetUpload, partSize, pendingUpload, rememberUpload, uploadInParts } from './upload.js';
import { oneTimeSecrets } from './jobs.js';
import { FieldError, paramFields, planParams } from './paramform.js';
import { shown } from './text.js';

const PRESETS = ['1080p', '720p', '480p', '360p', 'source'];
const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'];
const numbers = (last) => Array.from({ length: last + 1 }, (_, i) => String(i));
/**
 * The video codecs, as the coordinator checks them (`apps/video/params.rs`): the CRF range and
 * default, and the encoder's speed presets (fastest first for names, slowest first for numbers)
 * and default. `copy` encodes nothing.
 */
const VIDEO_CODECS = {
  h264: { label: 'H.264 (plays everywhere)', name: 'H.264', crf: [0, 51, 23], speeds: X264_PRESETS, speed: 'medium' },
  hevc: { label: 'H.265 / HEVC (smaller, slower)', name: 'H.265', crf: [0, 51, 25], speeds: X264_PRESETS, speed: 'medium' },
  av1: { label: 'AV1 (smallest, slowest)', name: 'AV1', crf: [1, 63, 35], speeds: numbers(13), speed: '8' },
  vp9: { label: 'VP9 (for WebM)', name: 'VP9', crf: [0, 63, 35], speeds: numbers(8), speed: '4' },
  copy: { label: 'Copy: keep the video as it is', name: 'copied video', crf: null, speeds: [], speed: null },
};
/** The containers and the codecs each carries (the coordinator's `check_combination`). */
const CONTAINERS = {
  mp4: { label: 'MP4', name: 'an MP4', video: ['h264', 'hevc', 'av1', 'vp9'], audio: ['aac', 'opus'],
    hint: 'Plays almost everywhere: H.264, H.265, AV1 or VP9 video, AAC or Opus sound.' },
  mov: { label: 'MOV (QuickTime)', name: 'a MOV', video: ['h264', 'hevc'], audio: ['aac'],
    hint: 'For Apple tools and editors: H.264 or H.265 video, AAC sound.' },
  mkv: { label: 'MKV (Matroska)', name: 'an MKV', video: ['h264', 'hevc', 'av1', 'vp9'], audio: ['aac', 'opus'],
    hint: 'Carries every codec here, and every kind of subtitle.' },
  webm: { label: 'WebM', name: 'a WebM', video: ['av1', 'vp9'], audio: ['opus'],
    hint: 'For the web: AV1 or VP9 video, Opus sound.' },
};
/**
 * The qualities a job may ask each chunk to reach instead of one rate factor (the coordinator's
 * PSNR_TARGETS and SSIM_TARGETS, apps/video/params.rs): `range` is what it accepts.
 */
const QUALITY_METRICS = {
  psnr: { name: 'PSNR', article: 'A', range: [25, 55], unit: ' dB', example: '40' },
  ssim: { name: 'SSIM', article: 'An', range: [0.8, 0.995], unit: '', example: '0.97' },
};
/**
 * The stills a job may ask for beside the video (the coordinator's THUMBNAIL_EVERY,
 * THUMBNAIL_WIDTH and DEFAULT_THUMBNAIL_WIDTH, apps/video/params.rs): a thumbnail every so many
 * seconds, so wide, and a poster at a time of the video.
 */
const THUMBNAIL_EVERY = [1, 3600];
const THUMBNAIL_WIDTH = [32, 640, 160];
const AUDIO_CODECS = { aac: 'AAC', opus: 'Opus', copy: 'Copy: keep the sound as it is' };
/** Audio codec of a container when none is chosen. */
const defaultAudio = (container) => (container === 'webm' ? 'opus' : 'aac');
/** Names in a list for a sentence: "AV1 or VP9", "H.264, H.265, AV1 or VP9". */
const either = (names) => (names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`);
const TIERS = [
  { value: 'economy', label: 'Economy', hint: 'cheapest: runs when the grid has room, in large chunks' },
  { value: 'standard', label: 'Standard', hint: 'the default' },
  { value: 'fast', label: 'Fast', hint: 'runs first, in small chunks on many devices, with backup copies of slow ones' },
];
/**
 * The fan-outs that cut a published app's input into items, and a chunk's number of them
 * (`chunk_items`) as the form asks for it: what an item is, and what a chunk holds unless said.
 * Such an input is priced by its items, counted only once it is uploaded.
 */
const ITEM_CHUNKS = {
  files: { label: 'Files per chunk', items: 'its files',
    hint: 'Default: sized from the speed and the grid. Each chunk is a tar of that many of the archive’s files.' },
  sweep: { label: 'Parameter sets per chunk', items: 'its parameter sets',
    hint: 'Default: one parameter set per chunk.' },
};
/** What a published app's fan-out runs its script on, by the manifest's `partitioner`. */
const FAN_OUTS = {
  lines: 'run on each chunk of the input’s lines',
  csv: 'run on each chunk of the CSV input’s lines, each chunk starting with the header line',
  bytes: 'run on each byte range of the input, sized by the grid',
  files: 'run on each chunk of the files of the input archive (zip, tar or tar.gz), each chunk a tar of them',
  sweep: 'run on each chunk of the parameter sets of the sweep the input describes in JSON',
};
/** What a published app's fan-in makes of the chunks' outputs, by the manifest's `assembler`. */
const FAN_INS = {
  concat: 'the output is the chunks’ outputs joined in order',
  archive: 'the output is one tar archive of the chunks’ output files, in order',
  zip: 'the output is one zip archive of the chunks’ output files, in order',
  sum: 'the output is one JSON object, the chunks’ numbers added up key by key',
  stats: 'the output is one JSON object: for each key, the count, mean, standard deviation and 95% confidence interval of the chunks’ numbers',
};
/** What the input of a published app is, by its fan-out, where that is not a text. */
const INPUT_HINTS = {
  bytes: 'Any file: it is cut into byte ranges.',
  files: 'A zip, tar or tar.gz archive: its files are shared out among the chunks.',
  sweep: 'A JSON description of the sweep, e.g. {"seeds": 64}, {"grid": {"samples": [1000, 10000]}, "seeds": 8} or {"sets": [{…}, {…}]}.',
};
const EXAMPLE_SCRIPT = `import os
name = os.listdir("input")[0]
with open(os.path.join("input", name)) as src, open("output/result.txt", "w") as out:
    for line in src:
        out.write(line.upper())`;

export async function newJobView(main, [query], { me, navigate, isCurrent }) {
  main.append(heading('New job'));
  const loading = h('p', { class: 'muted' }, 'Loading the apps…');
  main.append(loading);
  // The app a page chose beforehand (the Apps page's "New job"): `name`, or `name@version`.
  const wanted = new URLSearchParams(query || '').get('app');
  let apps;
  try {
    apps = await api('/v1/apps');
    // A version older than the latest is not listed: it is looked up among the app's versions.
    const older = wanted && wanted.includes('@') && !apps.some((a) => appReference(a) === wanted)
      ? await olderVersion(wanted) : null;
    if (older) apps = [...apps, older];
  } catch (e) {
    loading.remove();
    main.append(h('div', { class: 'alert', role: 'alert' }, `The apps could not be loaded: ${e.message}`));
    return;
  }
  // Webhooks are offered where the coordinator takes them (its CreateJob has `webhook`).
  const doc = await openapi().catch(() => null);
  const create = doc && doc.components && doc.components.schemas && doc.components.schemas.CreateJob;
  const webhooks = !create || Boolean(create.properties && create.properties.webhook);
  if (!isCurrent()) return;
  loading.remove();
  const chosen = wanted ? apps.find((a) => appReference(a) === wanted || (!wanted.includes('@') && a.manifest.name === wanted)) : null;
  if (wanted && !chosen) main.append(h('p', { class: 'notice unknown-app' }, `There is no app “${wanted}” you may run: choose one below.`));
  const form = buildForm(apps, navigate, webhooks, { me, chosen });
  main.append(form);
}

/** The published version `reference` (`name@version`) names, or null when there is none. */
async function olderVersion(reference) {
  const at = reference.lastIndexOf('@');
  const [name, version] = [reference.slice(0, at), reference.slice(at + 1)];
  const versions = await api(`/v1/apps/${encodeURIComponent(name)}/versions`).catch((e) => {
    if (e instanceof ApiError && e.status === 404) return [];
    throw e;
  });
  return versions.find((v) => isPublished(v) && v.manifest.version === version) || null;
}

/** An app as the choice shows it: its name, version and who it comes from. */
function appLabel(app, me) {
  return `${app.manifest.name} ${app.manifest.version} (${publisherText(app, me)})`;
}

function select(options, value) {
  return h('select', {}, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

function buildForm(apps, navigate, webhooks, { me, chosen }) {
  const alerts = alertSlot();
  // Each app by what a job names it by: a built-in one by its name, a published one as
  // `name@version`, the version shown here.
  const first = chosen || apps.find((a) => a.manifest.name === 'python-map') || apps[0];
  const appSelect = select(apps.map((a) => [appReference(a), appLabel(a, me)]), first && appReference(first));
  appSelect.name = 'app';

  // Input.
  const file = h('input', { type: 'file', name: 'input' });
  // The chosen video's length as the browser reads it (null until read, or unreadable): a
  // poster past its end is refused here, not once the job is run and its input split.
  let sourceDuration = null;
  file.addEventListener('change', async () => {
    sourceDuration = null;
    const picked = file.files[0];
    const meta = picked ? await videoMetadata(picked) : null;
    if (meta && file.files[0] === picked) sourceDuration = meta.duration;
  });
  const fileField = field('Input file', file, ' ');
  const inputHint = fileField.wrap.querySelector('.hint');
  const resumeNote = h('div', { class: 'resume-note', 'aria-live': 'polite' });
  const inputText = h('textarea', { name: 'input_text', rows: 4, spellcheck: 'false' });
  const inputTextField = field('Or type the input here', inputText, 'Used when no file is chosen.');

  // python-map.
  const script = h('textarea', { name: 'script', rows: 8, spellcheck: 'false', class: 'code', placeholder: EXAMPLE_SCRIPT });
  const scriptFile = h('input', { type: 'file', name: 'script_file', accept: '.py,text/x-python,text/plain' });
  const example = h('button', { type: 'button', class: 'secondary small', onclick: () => { script.value = EXAMPLE_SCRIPT; script.focus(); } }, 'Use the example script');
  scriptFile.addEventListener('change', async () => {
    const picked = scriptFile.files[0];
    if (picked) {
      script.value = await picked.text();
      announce(`Loaded the script from ${picked.name}.`);
    }
  });
  const chunkLines = h('input', { type: 'number', name: 'chunk_lines', min: 1, step: 1, inputmode: 'numeric', placeholder: 'auto' });
  const chunkLinesField = field('Lines per chunk', chunkLines, 'Default: sized from the speed and the grid.');
  // Files or parameter sets per chunk: one field, named for the chosen app's fan-out.
  const chunkItems = h('input', { type: 'number', name: 'chunk_items', min: 1, step: 1, inputmode: 'numeric', placeholder: 'auto' });
  const chunkItemsField = field(ITEM_CHUNKS.files.label, chunkItems, ITEM_CHUNKS.files.hint);
  const chunkItemsLabel = chunkItemsField.wrap.querySelector('label');
  const chunkItemsHint = chunkItemsField.wrap.querySelector('.hint');
  const params = h('textarea', { name: 'params', rows: 3, spellcheck: 'false', class: 'code', value: '{}' });
  const paramsField = field('Parameters (JSON object)', params, 'Given to the script as JSON in IDLEGRID_PARAMS.');
  const paramsHint = paramsField.wrap.querySelector('.hint');
  // A published app's parameters: a box of their own, with a field for each where its schema
  // allows (the JSON textarea moves in beside them, shown instead when asked for), else the
  // textarea alone. Each app keeps what was written for it while another is chosen.
  const paramsToggle = h('button', { type: 'button', class: 'secondary small params-toggle' }, 'Edit as JSON');
  const paramsToggleRow = h('div', { class: 'actions left' }, paramsToggle);
  const paramsFieldsSlot = h('div', { class: 'param-fields-slot' });
  const paramsBox = h('fieldset', { class: 'app-fields app-params' }, h('legend', {}, 'Parameters'), paramsToggleRow, paramsFieldsSlot);
  /** Per app (by reference): { fields (null: JSON only), mode ('fields' or 'json'), text }. */
  const paramStates = new Map();
  let shownParams = null;
  const scriptBox = h('fieldset', { class: 'app-fields' }, h('legend', {}, 'Task script'),
    field('Task script (Python)', script, 'Reads the one file in input/, writes exactly one file into output/.').wrap,
    h('div', { class: 'actions left' }, example),
    field('Or load the script from a file', scriptFile).wrap,
    chunkLinesField.wrap);

  // A published app: its own script runs on each chunk of its input; what it is, and the lines
  // per chunk (the one field moves here from the script's box while such an app is chosen) or
  // the files or parameter sets per chunk.
  const publishedAbout = h('p', { class: 'published-about' });
  const publishedBox = h('fieldset', { class: 'app-fields published-app' }, h('legend', {}, 'Published app'), publishedAbout,
    chunkItemsField.wrap);

  // video-transcode.
  const videoCodec = select(Object.entries(VIDEO_CODECS).map(([v, c]) => [v, c.label]), 'h264');
  videoCodec.name = 'video_codec';
  const container = select(Object.entries(CONTAINERS).map(([v, c]) => [v, c.label]), 'mp4');
  container.name = 'container';
  const containerField = field('Container', container, CONTAINERS.mp4.hint);
  // A choice of codecs the container cannot carry, said as soon as it is made.
  const comboNote = h('p', { class: 'notice combo-note', 'aria-live': 'polite', hidden: true });
  const copyNote = h('p', { class: 'notice copy-note', hidden: true },
    'Copy carries the source’s video over as it is, only the container changes: resolution, quality and speed do not apply, and there is no streaming ladder, thumbnails or poster. '
    + 'The container must be able to carry the source’s codec (MKV carries every one).');
  const preset = select(PRESETS.map((p) => [p, p === 'source' ? 'Source size' : p]), '720p');
  preset.name = 'preset';
  const crf = h('input', { type: 'number', name: 'crf', min: 0, max: 51, step: 1, inputmode: 'numeric', placeholder: 'default' });
  const crfField = field('Quality (CRF, 0–51, lower is better)', crf, 'Leave empty for the default (23).');
  const crfLabel = crfField.wrap.querySelector('label');
  const crfHint = crfField.wrap.querySelector('.hint');
  // The quality: one rate factor for every chunk, or a quality each chunk's device searches the
  // rate factor for. Only the chosen way's fields are sent: the coordinator refuses both at once.
  const qualityName = uid('quality');
  const qualityModes = [['crf', 'Rate factor (CRF)'], ['target', 'Quality target (PSNR or SSIM)']].map(([value, text]) => {
    const id = uid('quality');
    return h('div', { class: 'field check' },
      h('input', { type: 'radio', name: qualityName, id, value, checked: value === 'crf' }), h('label', { for: id }, text));
  });
  const qualityMode = () => (qualityBox.querySelector(`input[name="${qualityName}"]:checked`) || { value: 'crf' }).value;
  const metric = select(Object.entries(QUALITY_METRICS).map(([v, m]) => [v, m.name]), 'psnr');
  metric.name = 'target_metric';
  const targetValue = h('input', { type: 'number', name: 'target_value', step: 'any', inputmode: 'decimal' });
  const targetField = field('Target', targetValue, 'Each chunk searches its rate factor, up to 4 encodes; charged as 4 encodes.');
  const targetLabel = targetField.wrap.querySelector('label');
  const targetBox = h('div', { class: 'quality-target' }, field('Quality metric', metric).wrap, targetField.wrap);
  const qualityBox = h('fieldset', { class: 'quality' }, h('legend', {}, 'Quality'),
    h('div', { class: 'choices' }, qualityModes), crfField.wrap, targetBox);
  const encoderSpeed = h('select', { name: 'speed' });
  const speedField = field('Encoder speed (slower is smaller)', encoderSpeed, ' ');
  const speedHint = speedField.wrap.querySelector('.hint');
  const hlsId = uid('hls');
  const hls = h('input', { type: 'checkbox', name: 'hls', id: hlsId, 'aria-describedby': `${hlsId}-hint` });
  const chunkSeconds = h('input', { type: 'number', name: 'chunk_seconds', min: 1, step: 'any', inputmode: 'decimal', placeholder: 'auto' });
  // Stills: pictures of the output's frames, made by the devices that encode them, so not
  // with Copy, which encodes nothing (the coordinator refuses them with it).
  const [everyLow, everyHigh] = THUMBNAIL_EVERY;
  const [narrowest, widest, usualWidth] = THUMBNAIL_WIDTH;
  const thumbnailsEvery = h('input', { type: 'number', name: 'thumbnails_every', min: everyLow, max: everyHigh, step: 'any', inputmode: 'decimal', placeholder: 'none' });
  const thumbnailWidth = h('input', { type: 'number', name: 'thumbnail_width', min: narrowest, max: widest, step: 2, inputmode: 'numeric', placeholder: String(usualWidth) });
  const poster = h('input', { type: 'number', name: 'poster', min: 0, step: 'any', inputmode: 'decimal', placeholder: 'none' });
  const stillsBox = h('fieldset', { class: 'stills' }, h('legend', {}, 'Thumbnails and poster'),
    h('div', { class: 'stills-fields' },
      field('Thumbnails every (seconds)', thumbnailsEvery, `From ${everyLow} to ${everyHigh}; empty for none. Tiled into sprite sheets with a WebVTT index, for scrubbing.`).wrap,
      field('Thumbnail width (pixels)', thumbnailWidth, `An even number from ${narrowest} to ${widest}; the height keeps the picture’s shape. Empty for ${usualWidth}.`).wrap,
      field('Poster at (seconds)', poster, 'The frame at this time of the video, full size; empty for none.').wrap),
    h('p', { class: 'hint stills-note' }, 'With thumbnails or a poster the output is a .tar archive of the video and its pictures.'));
  const videoBox = h('fieldset', { class: 'app-fields' }, h('legend', {}, 'Video'),
    field('Video codec', videoCodec).wrap,
    containerField.wrap,
    comboNote, copyNote,
    field('Resolution', preset).wrap,
    qualityBox,
    speedField.wrap,
    h('div', { class: 'field check' }, hls, h('label', { for: hlsId }, 'Streaming ladder (HLS + DASH)')),
    h('p', { class: 'hint field-after', id: `${hlsId}-hint` },
      'Several renditions up to the resolution, in any codec, as MP4 segments with HLS playlists and a DASH manifest, in one archive: '
      + 'leave the container at MP4. H.264 plays in nearly every browser; HEVC, AV1 and VP9 only where the browser decodes them.'),
    stillsBox,
    field('Seconds per chunk', chunkSeconds, 'Default: sized from the speed and the grid.').wrap);

  // Sound and subtitles of a video.
  const audioCodec = select([['', 'Default (AAC)'], ...Object.entries(AUDIO_CODECS)], '');
  audioCodec.name = 'audio_codec';
  const audioTracks = select([['all', 'All tracks'], ['first', 'The first track only'], ['languages', 'The tracks in these languages…']], 'all');
  audioTracks.name = 'audio_tracks';
  const languages = h('input', { type: 'text', name: 'audio_languages', autocomplete: 'off', spellcheck: 'false', placeholder: 'eng, fra' });
  const languagesField = field('Audio languages', languages, 'Language codes of 2 or 3 letters, as the source tags its tracks, separated by commas: eng, fra.');
  languagesField.wrap.hidden = true;
  const subtitlesId = uid('subtitles');
  const subtitles = h('input', { type: 'checkbox', name: 'subtitles', id: subtitlesId, checked: true, 'aria-describedby': `${subtitlesId}-hint` });
  const audioBox = h('fieldset', { class: 'app-fields' }, h('legend', {}, 'Sound and subtitles'),
    field('Audio codec', audioCodec, 'Copy keeps the source’s sound as it is, if the container can carry it.').wrap,
    field('Audio tracks', audioTracks).wrap,
    languagesField.wrap,
    h('div', { class: 'field check' }, subtitles, h('label', { for: subtitlesId }, 'Keep subtitles')),
    h('p', { class: 'hint field-after', id: `${subtitlesId}-hint` },
      'Text subtitles are carried over (MKV keeps picture subtitles too; a streaming ladder has them as WebVTT).'));

  // Preferences: speed against price, with the price and time of each tier.
  const speedName = uid('speed');
  const speeds = TIERS.map((s) => {
    const id = uid('speed');
    return h('div', { class: 'field check' },
      h('input', { type: 'radio', name: speedName, id, value: s.value, checked: s.value === 'standard' }),
      h('label', { for: id }, `${s.label} `, h('span', { class: 'muted' }, `— ${s.hint}`)));
  });
  const estimateBox = h('div', { class: 'estimate', id: 'estimate', 'aria-live': 'polite' },
    h('p', { class: 'muted' }, 'Choose the input to see the price and time of each speed.'));
  const speedBox = h('fieldset', {}, h('legend', {}, 'Speed and price'), speeds, estimateBox);
  const webhook = h('input', { type: 'url', name: 'webhook', placeholder: 'https://example.com/hooks/idlegrid', autocomplete: 'url' });
  const webhookField = field('Webhook URL (optional)', webhook, 'Told about every change of the job’s state.');
  webhookField.wrap.hidden = !webhooks;

  // Progress.
  const progressId = uid('progress');
  const progress = h('progress', { id: progressId, max: 1, value: 0 });
  const progressText = h('span', { class: 'progress-text' });
  const progressBox = h('div', { class: 'upload-progress', hidden: true },
    h('label', { for: progressId }, 'Upload'), progress, progressText);
  const secretBox = h('div');

  const appField = field('App', appSelect, ' ');
  const appHint = appField.wrap.querySelector('.hint');
  // The app's description: a published one's is its publisher's words, shown as text that wraps.
  appHint.classList.add('app-description');
  const submit = h('button', { type: 'submit' }, 'Create and run');
  const form = h('form', { class: 'card', novalidate: true, id: 'new-job' },
    appField.wrap,
    h('fieldset', {}, h('legend', {}, 'Input'), fileField.wrap, resumeNote, inputTextField.wrap),
    scriptBox, publishedBox, videoBox, audioBox, paramsField.wrap, paramsBox, speedBox, webhookField.wrap,
    alerts.el, progressBox, secretBox, h('div', { class: 'actions' }, submit));

  function currentApp() {
    return apps.find((a) => appReference(a) === appSelect.value);
  }
  function isVideo() { return appSelect.value === 'video-transcode'; }
  /** Whether the input may be typed: a text, not a video or an archive. */
  function typedInput() {
    const app = currentApp();
    return !isVideo() && !(app && isPublished(app) && app.manifest.partitioner === 'files');
  }
  function sync() {
    const app = currentApp();
    const customerScript = app ? app.manifest.customer_script : false;
    const published = Boolean(app && isPublished(app));
    // A published app's fan-out says what its input is and how a job may cut it.
    const partitioner = published ? app.manifest.partitioner : null;
    appHint.textContent = app ? shown(app.manifest.description) : '';
    scriptBox.hidden = !customerScript;
    publishedBox.hidden = !published;
    if (published) {
      const { name, version, assembler } = app.manifest;
      // A step that is the app's own script runs as a task on devices too.
      const fanOut = Object.hasOwn(FAN_OUTS, partitioner) ? FAN_OUTS[partitioner]
        : partitioner.endsWith('.py') ? `run on each chunk its own partition script (${partitioner}, run on a device first) cuts the input into`
          : 'run on each chunk of the input';
      const fanIn = Object.hasOwn(FAN_INS, assembler) ? FAN_INS[assembler]
        : assembler.endsWith('.py') ? `the output is what its own reduce script (${assembler}, run on a device last) makes of the chunks’ outputs`
          : 'the output is made of the chunks’ outputs';
      replace(publishedAbout, `${name} ${version}, ${publisherText(app, me)}`,
        app.published_at ? `, published ${formatTime(app.published_at)}` : '',
        `. It brings its own task script, ${fanOut}; ${fanIn}. `,
        h('a', { href: `#/apps/${encodeURIComponent(name)}` }, 'Its versions'), '.');
    }
    // Lines per chunk: in the script's box for python-map, in the app's box for a published app
    // (and only for an app cut by lines: nothing else would send them).
    if (cutByLines(app)) (customerScript ? scriptBox : publishedBox).append(chunkLinesField.wrap);
    chunkLinesField.wrap.hidden = !cutByLines(app);
    // Files or parameter sets per chunk, for an app cut into them; an app cut into byte ranges
    // has neither (the grid sizes them).
    const items = itemChunks(app);
    chunkItemsField.wrap.hidden = !items;
    if (items) {
      chunkItemsLabel.textContent = items.label;
      chunkItemsHint.textContent = items.hint;
    }
    // What the input is, where the fan-out says; an archive cannot be typed.
    const inputAbout = Object.hasOwn(INPUT_HINTS, partitioner) ? INPUT_HINTS[partitioner] : '';
    inputHint.textContent = inputAbout;
    inputHint.hidden = !inputAbout;
    paramsHint.textContent = published
      ? 'Given to the app’s script as JSON in IDLEGRID_PARAMS: its description says which it takes.'
      : 'Given to the script as JSON in IDLEGRID_PARAMS.';
    videoBox.hidden = !isVideo();
    audioBox.hidden = !isVideo();
    // What was written for the app left is kept for it; the chosen one's comes back.
    if (shownParams) shownParams.text = params.value;
    shownParams = app && !isVideo() ? paramState(app) : null;
    if (shownParams) params.value = shownParams.text;
    // The textarea: in the parameters' box for a published app, on its own for python-map.
    if (published) paramsBox.append(paramsField.wrap);
    else paramsBox.before(paramsField.wrap);
    showParams();
    inputTextField.wrap.hidden = !typedInput();
    file.accept = isVideo() ? 'video/*'
      : partitioner === 'files' ? '.zip,.tar,.tgz,.tar.gz,application/zip,application/x-tar,application/gzip'
        : partitioner === 'sweep' ? '.json,application/json' : '';
  }
  appSelect.addEventListener('change', sync);

  /** The parameters' state of `app`, made the first time it is chosen. */
  function paramState(app) {
    const key = appReference(app);
    if (!paramStates.has(key)) {
      const specs = isPublished(app) ? planParams(app.manifest.parameters) : null;
      const fields = specs ? paramFields(specs) : null;
      paramStates.set(key, { fields, mode: fields ? 'fields' : 'json', text: '{}' });
    }
    return paramStates.get(key);
  }
  /** Whether the chosen app's parameters are asked for by their fields (not as JSON). */
  function fieldsShown() {
    return Boolean(shownParams && shownParams.fields && shownParams.mode === 'fields');
  }
  /** Shows the chosen app's parameters: its fields, or the textarea; the toggle between them. */
  function showParams() {
    const state = shownParams;
    const published = Boolean(state && isPublished(currentApp()));
    paramsBox.hidden = !published;
    paramsToggleRow.hidden = !(state && state.fields);
    if (state && state.fields) replace(paramsFieldsSlot, state.fields.el);
    else paramsFieldsSlot.replaceChildren();
    paramsFieldsSlot.hidden = !fieldsShown();
    paramsField.wrap.hidden = !state || fieldsShown();
    paramsToggle.textContent = fieldsShown() ? 'Edit as JSON' : 'Use the fields';
  }
  // "Edit as JSON": the textarea, holding what the fields hold; and back to the fields, which
  // take what the JSON says if they can hold it (else it stays JSON, and why is said).
  paramsToggle.addEventListener('click', () => {
    const state = shownParams;
    if (!state || !state.fields) return;
    alerts.clear();
    params.removeAttribute('aria-invalid');
    for (const control of state.fields.controls) control.removeAttribute('aria-invalid');
    if (state.mode === 'fields') {
      const text = JSON.stringify(state.fields.peek(), null, 2);
      params.value = text;
      params.rows = Math.min(12, Math.max(3, text.split('\n').length));
      state.mode = 'json';
      announce('The parameters are shown as JSON.');
    } else {
      let problem;
      try {
        problem = state.fields.fill(jsonParams());
      } catch (e) {
        problem = e.message;
      }
      if (problem) {
        alerts.show(`The parameters cannot go back into the fields: ${problem} Change the JSON, or keep it: it is sent as it is.`);
        params.setAttribute('aria-invalid', 'true');
        params.focus();
        return;
      }
      state.mode = 'fields';
      announce('The parameters are shown in their fields.');
    }
    showParams();
    refreshEstimate();
  });
  sync();

  /** The video fields that follow the codec and the container: ranges, speeds, defaults. */
  function syncVideo() {
    const codec = VIDEO_CODECS[videoCodec.value];
    const copy = videoCodec.value === 'copy';
    // The streaming ladder stays open with Copy: checked, it is refused with a message saying
    // why (copied video cannot be made into renditions) rather than dropped unsaid.
    for (const control of [preset, crf, encoderSpeed, metric, targetValue, thumbnailsEvery, thumbnailWidth, poster,
      ...qualityBox.querySelectorAll('input[type="radio"]')]) {
      control.disabled = copy;
    }
    copyNote.hidden = !copy;
    if (codec.crf) {
      const [low, high, usual] = codec.crf;
      crf.min = String(low);
      crf.max = String(high);
      crfLabel.textContent = `Quality (CRF, ${low}–${high} for ${codec.name}, lower is better)`;
      crfHint.textContent = `Leave empty for the default (${usual}).`;
    }
    const target = qualityMode() === 'target';
    crfField.wrap.hidden = target;
    targetBox.hidden = !target;
    const m = QUALITY_METRICS[metric.value];
    targetValue.min = String(m.range[0]);
    targetValue.max = String(m.range[1]);
    targetValue.placeholder = `e.g. ${m.example}`;
    targetLabel.textContent = `Target ${m.name} (${m.range[0]}–${m.range[1]}${m.unit}, higher is better)`;
    // The speed choices are the codec's; one chosen that the codec also has stays chosen.
    if (encoderSpeed.dataset.codec !== videoCodec.value) {
      const kept = encoderSpeed.value;
      const options = codec.speeds.map((v, i) => {
        let text = v;
        if (/^\d+$/.test(v) && i === 0) text = `${v} (slowest, smallest)`;
        else if (/^\d+$/.test(v) && i === codec.speeds.length - 1) text = `${v} (fastest)`;
        return h('option', { value: v }, text);
      });
      replace(encoderSpeed, h('option', { value: '' }, codec.speed ? `Default (${codec.speed})` : 'Default'), options);
      encoderSpeed.value = codec.speeds.includes(kept) ? kept : '';
      encoderSpeed.dataset.codec = videoCodec.value;
      speedHint.textContent = videoCodec.value === 'av1' ? 'SVT-AV1’s presets: 0 is the slowest, 13 the fastest.'
        : videoCodec.value === 'vp9' ? 'libvpx’s cpu-used: 0 is the slowest, 8 the fastest.'
          : copy ? 'Nothing is encoded.' : `${videoCodec.value === 'hevc' ? 'x265' : 'x264'}’s presets, fastest first.`;
    }
    const box = CONTAINERS[container.value];
    containerField.wrap.querySelector('.hint').textContent = box.hint;
    audioCodec.options[0].textContent = `Default (${AUDIO_CODECS[defaultAudio(container.value)]})`;
    languagesField.wrap.hidden = audioTracks.value !== 'languages';
    const problem = combinationProblem();
    comboNote.hidden = !problem;
    comboNote.textContent = problem ? problem.message : '';
  }
  for (const control of [videoCodec, container, audioCodec, audioTracks, hls, metric, ...qualityBox.querySelectorAll('input[type="radio"]')]) {
    control.addEventListener('change', syncVideo);
  }
  syncVideo();

  /**
   * Codecs and options that do not go together (as the coordinator refuses them), as
   * { control, message } saying what to change; null when they do.
   */
  function combinationProblem() {
    const codec = videoCodec.value;
    const box = CONTAINERS[container.value];
    if (hls.checked) {
      if (codec === 'copy') {
        return { control: hls, message: 'A streaming ladder encodes the video again at several sizes, which Copy does not: turn the streaming ladder off, or choose a video codec to encode with.' };
      }
      if (container.value !== 'mp4') {
        return { control: container, message: 'A streaming ladder is MP4 segments with HLS playlists and a DASH manifest, in one archive: leave the container at MP4, or turn the streaming ladder off.' };
      }
    }
    if (codec !== 'copy' && !box.video.includes(codec)) {
      return { control: videoCodec, message: `${box.name.replace(/^a/, 'A')} file cannot carry ${VIDEO_CODECS[codec].name} video: choose ${either(box.video.map((c) => VIDEO_CODECS[c].name))} as the video codec, or another container.` };
    }
    const sound = audioCodec.value || defaultAudio(container.value);
    if (sound !== 'copy' && !box.audio.includes(sound)) {
      return { control: audioCodec, message: `${box.name.replace(/^a/, 'A')} file cannot carry ${AUDIO_CODECS[sound]} audio: choose ${either(box.audio.map((c) => AUDIO_CODECS[c]))} (or Default) as the audio codec.` };
    }
    return null;
  }

  /**
   * The video app's parameters from the fields, checked as the coordinator checks them; only
   * what differs from its defaults is sent (the resolution always, as before). Throws a
   * FieldError naming the field to change.
   */
  function videoParams() {
    const problem = combinationProblem();
    if (problem) throw new FieldError(problem.control, problem.message);
    const codecName = videoCodec.value;
    const codec = VIDEO_CODECS[codecName];
    const p = {};
    if (codecName !== 'copy') {
      p.preset = preset.value;
      if (codecName !== 'h264') p.video_codec = codecName;
    } else {
      p.video_codec = 'copy';
    }
    if (container.value !== 'mp4') p.container = container.value;
    if (codecName !== 'copy') {
      if (qualityMode() === 'target') {
        p.target_quality = qualityTarget();
      } else if (crf.value !== '') {
        const [low, high] = codec.crf;
        const n = Number(crf.value);
        if (!Number.isInteger(n) || n < low || n > high) {
          throw new FieldError(crf, `CRF for ${codec.name} must be a whole number from ${low} to ${high}.`);
        }
        p.crf = n;
      }
      // H.264's speed as x264_preset, as before there was a choice of codec; the others' as speed.
      if (encoderSpeed.value) p[codecName === 'h264' ? 'x264_preset' : 'speed'] = encoderSpeed.value;
      if (hls.checked) p.hls = true;
      Object.assign(p, stillsParams());
    }
    if (audioCodec.value && audioCodec.value !== defaultAudio(container.value)) p.audio_codec = audioCodec.value;
    if (audioTracks.value === 'first') p.audio_tracks = 'first';
    if (audioTracks.value === 'languages') {
      const codes = languages.value.split(/[\s,;]+/).filter(Boolean);
      const wrong = codes.find((c) => !/^[A-Za-z]{2,3}$/.test(c));
      if (!codes.length) throw new FieldError(languages, 'Write the languages of the audio tracks to keep, e.g. eng, fra, or keep all tracks.');
      if (wrong) throw new FieldError(languages, `“${wrong}” is not a language code: write codes of 2 or 3 letters, e.g. eng, fra.`);
      if (codes.length > 32) throw new FieldError(languages, 'Name at most 32 languages.');
      p.audio_tracks = [...new Set(codes.map((c) => c.toLowerCase()))];
    }
    if (!subtitles.checked) p.subtitles = false;
    return p;
  }

  /**
   * The thumbnails and poster asked for, as parameters checked as the coordinator checks them
   * (and the poster against the video's length, when the browser could read it): {} for none.
   */
  function stillsParams() {
    const p = {};
    const number = (control, what) => {
      // A number field holds '' for text that is no number, as for nothing typed.
      if (control.validity.badInput) throw new FieldError(control, `${what} must be a number.`);
      return control.value === '' ? null : Number(control.value);
    };
    const every = number(thumbnailsEvery, 'The thumbnails’ interval');
    const width = number(thumbnailWidth, 'The thumbnails’ width');
    if (every !== null) {
      if (!Number.isFinite(every) || every < everyLow || every > everyHigh) {
        throw new FieldError(thumbnailsEvery, `Thumbnails can be taken every ${everyLow} to ${everyHigh} seconds.`);
      }
      p.thumbnails = { every };
      if (width !== null) {
        if (!Number.isInteger(width) || width % 2 !== 0 || width < narrowest || width > widest) {
          throw new FieldError(thumbnailWidth, `The thumbnails’ width must be an even number of pixels from ${narrowest} to ${widest}.`);
        }
        p.thumbnails.width = width;
      }
    } else if (width !== null) {
      throw new FieldError(thumbnailsEvery, 'Write how often to take a thumbnail, or leave their width empty.');
    }
    const at = number(poster, 'The poster’s time');
    if (at !== null) {
      if (!Number.isFinite(at) || at < 0) throw new FieldError(poster, 'The poster’s time is in seconds from the start: 0 or more.');
      if (sourceDuration !== null && at > sourceDuration) {
        throw new FieldError(poster, `The poster’s time is past the end of the video (${sourceDuration.toFixed(1)} s).`);
      }
      p.poster = at;
    }
    return p;
  }

  /** The quality target from its fields, checked as the coordinator checks it. */
  function qualityTarget() {
    const m = QUALITY_METRICS[metric.value];
    const [low, high] = m.range;
    // A number field holds '' for text that is no number, as for nothing typed.
    if (targetValue.value === '') {
      throw new FieldError(targetValue, `Write the ${m.name} target, from ${low} to ${high}${m.unit}, or choose a rate factor instead.`);
    }
    const n = Number(targetValue.value);
    if (!Number.isFinite(n) || n < low || n > high) throw new FieldError(targetValue, `${m.article} ${m.name} target must be from ${low} to ${high}${m.unit}.`);
    return { metric: metric.value, value: n };
  }

  function chosenTier() {
    const speed = form.querySelector(`input[name="${speedName}"]:checked`);
    return speed ? speed.value : 'standard';
  }

  /** What the input is, for a price before it is uploaded: its size, or a video's metadata. */
  /** Largest chosen file whose lines are counted for the estimate. */
  const COUNT_LINES_UP_TO = 64 * 1024 * 1024;

  /** Lines of a text stream: its line ends, and a last line without one. */
  async function countLines(stream) {
    const reader = stream.getReader();
    let lines = 0;
    let last = 10;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const byte of value) if (byte === 10) lines += 1;
      if (value.length) last = value[value.length - 1];
    }
    return lines + (last === 10 ? 0 : 1);
  }

  async function describeInput() {
    const picked = file.files[0] || null;
    if (isVideo()) {
      if (!picked) return null;
      const meta = await videoMetadata(picked);
      if (!meta) return null;
      // The browser does not tell the frame rate; 30 fps is assumed until the upload is priced.
      return { video: { duration_secs: meta.duration, width: meta.width, height: meta.height, fps: 30, audio: true } };
    }
    // An input cut into items (files, parameter sets) has no lines worth counting: it is priced
    // by its items once uploaded.
    const lines = !itemChunks(currentApp());
    // With the lines counted, chunks of N lines are priced exactly (not bounded by bytes).
    // Files too large to read in a moment are priced by their bytes alone (a bound).
    if (picked) {
      const input_lines = lines && picked.size <= COUNT_LINES_UP_TO ? await countLines(picked.stream()) : undefined;
      return { input_bytes: picked.size, input_lines };
    }
    if (typedInput() && inputText.value !== '') {
      const blob = new Blob([inputText.value]);
      return { input_bytes: blob.size, input_lines: lines ? await countLines(blob.stream()) : undefined };
    }
    return null;
  }

  let estimateRound = 0;
  async function refreshEstimate() {
    const round = ++estimateRound;
    const app = currentApp();
    const described = app ? await describeInput().catch(() => null) : null;
    if (round !== estimateRound) return;
    if (!described) {
      // An archive or a sweep is priced once uploaded, whatever is chosen here.
      const items = itemChunks(app);
      replace(estimateBox, items ? uploadPricedNote(items) : h('p', { class: 'muted' }, 'Choose the input to see the price and time of each speed.'));
      return;
    }
    const request = { app: appReference(app), preferences: { tier: chosenTier() }, ...described };
    if (isVideo()) {
      try {
        request.params = videoParams();
      } catch {
        // What to change is said beside the fields (and on submit).
        replace(estimateBox, h('p', { class: 'muted' }, 'No estimate until the video settings above are fixed.'));
        return;
      }
      if (chunkSeconds.value !== '' && Number(chunkSeconds.value) > 0) request.chunk_seconds = Number(chunkSeconds.value);
    } else {
      try {
        Object.assign(request, chunkOptions(app));
        request.params = appParams();
      } catch (e) {
        // Not the price of another cut: what to change instead.
        replace(estimateBox, h('p', { class: 'muted' }, `No estimate: ${e.message}`));
        return;
      }
    }
    try {
      const estimate = await api('/v1/jobs/estimate', { method: 'POST', body: request });
      if (round === estimateRound) replace(estimateBox, estimateView(estimate));
    } catch (e) {
      if (round !== estimateRound) return;
      // An archive or a sweep is priced by its items, counted from the input itself: not a
      // fault, only a price that comes with the upload.
      const items = itemChunks(app);
      if (items && e instanceof ApiError && e.status === 422 && e.code === 'invalid_input') {
        replace(estimateBox, uploadPricedNote(items));
      } else {
        replace(estimateBox, h('p', { class: 'muted' }, `No estimate: ${e.message}`));
      }
    }
  }

  /**
   * The chunk option of the chosen app from its field, checked: `chunk_lines` for an app cut by
   * lines, `chunk_items` for one cut into files or parameter sets; {} when left empty. Throws a
   * FieldError naming the field for anything but a whole number of at least 1.
   */
  function chunkOptions(app) {
    const items = itemChunks(app);
    const [control, key, label] = cutByLines(app) ? [chunkLines, 'chunk_lines', 'Lines per chunk']
      : items ? [chunkItems, 'chunk_items', items.label] : [null];
    if (!control) return {};
    // A number field holds '' for text that is no number, as for nothing typed.
    if (control.value === '' && !control.validity.badInput) return {};
    const n = Number(control.value);
    if (control.validity.badInput || !Number.isInteger(n) || n < 1) {
      throw new FieldError(control, `${label} must be a whole number of at least 1.`);
    }
    return { [key]: n };
  }
  for (const control of [appSelect, file, videoCodec, container, preset, crf, metric, targetValue, encoderSpeed, hls, audioCodec, audioTracks,
    languages, subtitles, chunkSeconds, chunkLines, chunkItems, thumbnailsEvery, thumbnailWidth, poster, ...qualityBox.querySelectorAll('input[type="radio"]')]) {
    control.addEventListener('change', refreshEstimate);
  }
  inputText.addEventListener('input', refreshEstimate);
  // The parameters are priced as they change, as the job will be sent.
  params.addEventListener('input', refreshEstimate);
  for (const type of ['input', 'change']) paramsFieldsSlot.addEventListener(type, refreshEstimate);
  // Numbers being typed re-price as they change, not only when the field is left.
  for (const control of [chunkSeconds, chunkLines, chunkItems]) control.addEventListener('input', refreshEstimate);
  for (const radio of form.querySelectorAll(`input[name="${speedName}"]`)) radio.addEventListener('change', refreshEstimate);
  // What the estimate says before anything is chosen depends on the app chosen at first.
  refreshEstimate();

  function showResume() {
    const picked = file.files[0];
    const pending = pendingUpload(picked);
    if (!pending) { resumeNote.replaceChildren(); return; }
    replace(resumeNote, h('p', { class: 'notice' },
      `${pending.name} was partly uploaded to job ${pending.job}. Submitting resumes that upload; the job keeps the settings it was created with. `,
      h('button', { type: 'button', class: 'secondary small', onclick: () => { forgetUpload(picked); showResume(); announce('The unfinished upload is forgotten; submitting creates a new job.'); } }, 'Start over instead')));
  }
  file.addEventListener('change', showResume);

  /** The parameters the textarea holds, as a JSON object (a FieldError on it if not one). */
  function jsonParams() {
    let parsed;
    try {
      parsed = JSON.parse(params.value.trim() || '{}');
    } catch (e) {
      throw new FieldError(params, `The parameters are not valid JSON: ${e.message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new FieldError(params, 'The parameters must be a JSON object, e.g. {"factor": 2}.');
    }
    return parsed;
  }
  /**
   * The parameters of the chosen app (not the video app: its own fields), from its fields,
   * checked, or from the textarea: the same for the estimate as for the job.
   */
  function appParams() {
    return fieldsShown() ? shownParams.fields.read() : jsonParams();
  }

  function readForm() {
    const app = currentApp();
    if (!app) throw new Error('Choose an app.');
    const picked = file.files[0] || null;
    const video = isVideo();
    let input = picked;
    if (!input && typedInput() && inputText.value !== '') input = new Blob([inputText.value], { type: 'text/plain' });
    if (!input) {
      throw new FieldError(file, video ? 'Choose the video file to transcode.'
        : typedInput() ? 'Choose an input file or type the input.' : 'Choose the archive (zip, tar or tar.gz) whose files to process.');
    }
    const body = { app: appReference(app), preferences: {} };
    // Named after the file, as the CLI names its jobs (typed input: no name).
    if (picked) body.name = picked.name.slice(0, 200);
    body.preferences.tier = chosenTier();
    if (video) {
      body.params = videoParams();
      if (chunkSeconds.value !== '') {
        const n = Number(chunkSeconds.value);
        if (!(n > 0)) throw new FieldError(chunkSeconds, 'Seconds per chunk must be a positive number.');
        body.chunk_seconds = n;
      }
    } else {
      body.params = appParams();
    }
    // The script only for the app that runs the customer's (python-map): a published app
    // brings its own, and the coordinator refuses one sent to it.
    if (app.manifest.customer_script) {
      if (!script.value.trim()) throw new FieldError(script, 'Write the task script or load it from a file.');
      body.script = script.value;
    }
    Object.assign(body, chunkOptions(app));
    const hook = webhook.value.trim();
    if (hook) {
      let url;
      try { url = new URL(hook); } catch { throw new FieldError(webhook, 'The webhook URL is not a valid URL.'); }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new FieldError(webhook, 'The webhook URL must start with https:// or http://.');
      body.webhook = { url: hook };
    }
    return { body, input, picked };
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    alerts.clear();
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    let request;
    const picked = file.files[0] || null;
    try {
      // Resuming an upload: the job exists with its settings; only the file matters.
      request = pendingUpload(picked) ? { body: null, input: picked, picked } : readForm();
    } catch (e) {
      alerts.show(e);
      if (e instanceof FieldError) { e.control.setAttribute('aria-invalid', 'true'); e.control.focus(); }
      return;
    }
    submit.disabled = true;
    let jobId = null;
    try {
      const pending = pendingUpload(request.picked);
      let size = partSize();
      if (pending) {
        const existing = await api(`/v1/jobs/${pending.job}`).catch((e) => {
          if (e instanceof ApiError && e.status === 404) return null;
          throw e;
        });
        if (existing && existing.state === 'created') {
          jobId = existing.id;
          size = pending.partSize || size;
          announce(`Resuming the upload to job ${jobId}.`);
        } else {
          forgetUpload(request.picked);
          request = readForm();
        }
      }
      if (jobId === null) {
        announce('Creating the job…');
        const job = await api('/v1/jobs', { method: 'POST', body: request.body });
        jobId = job.id;
        if (job.webhook && job.webhook.secret) {
          oneTimeSecrets.set(job.id, job.webhook.secret);
          replace(secretBox, webhookSecretNote(job.webhook.secret));
        }
        rememberUpload(request.picked, jobId, size);
      }
      progressBox.hidden = false;
      progress.value = 0;
      announce(`Uploading the input of job ${jobId}…`);
      let lastAnnounced = -1;
      const receipt = await uploadInParts(jobId, request.input, {
        size,
        onProgress: ({ sent, total, part, parts, skipped }) => {
          progress.value = total ? sent / total : 1;
          progressText.textContent = `${formatBytes(sent)} of ${formatBytes(total)} · part ${part + 1} of ${parts}${skipped ? ` (${skipped} already there)` : ''}`;
          const tenth = Math.floor((total ? sent / total : 1) * 10);
          if (tenth !== lastAnnounced) { lastAnnounced = tenth; announce(`Upload ${tenth * 10} %`); }
        },
      });
      forgetUpload(request.picked);
      progressText.textContent = `Uploaded ${formatBytes(receipt.size)} (SHA-256 ${String(receipt.sha256).slice(0, 12)}…)`;
      // The exact price, from the uploaded input itself, before anything runs.
      const exact = await api('/v1/jobs/estimate', { method: 'POST', body: { job: jobId } });
      replace(estimateBox, estimateView(exact));
      if (!exact.affordable) {
        alerts.show(`Job ${jobId} was not started: ${exact.problem}`);
        announce('The job was not started.');
        return;
      }
      announce(`Starting job ${jobId} at up to ${formatCredits(exact.quote.price)}…`);
      await api(`/v1/jobs/${jobId}/run`, { method: 'POST' });
      announce(`Job ${jobId} is running.`);
      navigate(`#/jobs/${jobId}`);
    } catch (e) {
      const resumable = jobId !== null && request.picked && pendingUpload(request.picked);
      alerts.show(resumable
        ? `${e.message}. Pick the same file and submit again to resume the upload to job ${jobId}.`
        : e.message);
      if (jobId === null && e instanceof ApiError && e.code === 'invalid_params') markRefusedParams(e.message);
      showResume();
      announce('The job was not started.');
    } finally {
      submit.disabled = false;
    }
  });
  /**
   * Marks what the coordinator refused the parameters for (its message names each place in
   * `params`, a JSON pointer: `params/max_side: 5 is less than the minimum of 16`, or a missing
   * property by its name), and focuses the first: the field, or the textarea.
   */
  function markRefusedParams(message) {
    if (isVideo()) return;
    let marked = [];
    if (fieldsShown()) {
      const { fields } = shownParams;
      marked = fields.controls.filter((control) => {
        const name = control.dataset.param;
        const at = `params/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`;
        return message.includes(`${at}:`) || message.includes(`${at}/`) || message.includes(`${JSON.stringify(name)} is a required property`);
      });
    } else if (!paramsField.wrap.hidden) {
      marked = [params];
    }
    for (const control of marked) control.setAttribute('aria-invalid', 'true');
    if (marked.length) marked[0].focus();
  }
  return form;
}

/**
 * Whether the app's input is cut by lines, so that a job of it may say how many per chunk:
 * python-map's, and a published app's that cuts a text or a CSV file by lines.
 */
function cutByLines(app) {
  if (!app) return false;
  const { partitioner, customer_script: customerScript } = app.manifest;
  return (partitioner === 'lines' && Boolean(customerScript)) || (isPublished(app) && (partitioner === 'lines' || partitioner === 'csv'));
}

/**
 * How a job of the app says its items per chunk (ITEM_CHUNKS): a published app's whose input
 * is cut into files or parameter sets; null for any other.
 */
function itemChunks(app) {
  if (!app || !isPublished(app) || !Object.hasOwn(ITEM_CHUNKS, app.manifest.partitioner)) return null;
  return ITEM_CHUNKS[app.manifest.partitioner];
}

/** What the estimate says of an input priced by its items before it is uploaded. */
function uploadPricedNote(items) {
  return h('p', { class: 'muted upload-priced' },
    `This app’s input is priced by ${items.items}, counted once it is uploaded: “Create and run” uploads it, `
    + 'works out the exact price of the chosen speed and starts the job only if your balance covers it.');
}

/** The price and time of each tier, the chosen one marked, and the balance. */
export function estimateView(estimate) {
  const rows = estimate.tiers.map((t) => h('tr', { class: t.tier === estimate.quote.tier ? 'chosen' : '', dataset: { tier: t.tier } },
    h('th', { scope: 'row' }, t.tier, t.tier === estimate.quote.tier ? h('span', { class: 'sr-only' }, ' (chosen)') : null),
    h('td', { class: 'price' }, formatCredits(t.price)),
    h('td', {}, t.eta_secs === null || t.eta_secs === undefined ? 'no device online' : formatDuration(t.eta_secs)),
    h('td', {}, String(t.chunks))));
  return h('div', {},
    h('table', { class: 'estimate-table' },
      h('caption', {}, estimate.exact ? 'Price of this input (what running it holds)' : 'Estimated price and time'),
      h('thead', {}, h('tr', {}, ['Speed', 'Up to', 'Done in about', 'Chunks'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)),
    h('p', { class: estimate.affordable ? 'muted' : 'alert', role: estimate.affordable ? null : 'alert' },
      estimate.affordable
        ? `Your balance: ${formatCredits(estimate.balance)}. You pay only for validated work, never more than the quote.`
        : estimate.problem));
}

/** A video file's duration and size, read by the browser (null if it cannot). */
function videoMetadata(blob) {
  return new Promise((resolve) => {
    const video = document.createElement('video');
    const url = URL.createObjectURL(blob);
    const done = (value) => { URL.revokeObjectURL(url); resolve(value); };
    video.preload = 'metadata';
    video.onloadedmetadata = () => done(Number.isFinite(video.duration) && video.videoWidth
      ? { duration: video.duration, width: video.videoWidth, height: video.videoHeight } : null);
    video.onerror = () => done(null);
    video.src = url;
  });
}

export function webhookSecretNote(secret) {
  return h('div', { class: 'notice secret-note' },
    h('p', {}, h('strong', {}, 'Webhook signing secret: '), h('code', { class: 'secret' }, secret)),
    h('p', {}, 'Keep it now: it will not be shown again. Use it to check the signature of the webhook’s requests.'));
}
