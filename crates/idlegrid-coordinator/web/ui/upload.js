// Uploads a job's input in parts (resumable): PUT /v1/jobs/{id}/input/parts/{n} with the
// part's SHA-256, then POST /v1/jobs/{id}/input/complete. Unfinished uploads of a file are
// remembered in localStorage so that picking the same file again resumes them.

import { api, errorFrom, session } from './api.js';

const PENDING = 'idlegrid.uploads';
const DEFAULT_PART = 8 * 1024 * 1024;

/** Part size: 8 MiB, or `localStorage['idlegrid.partSize']` bytes (tests use small parts). */
export function partSize() {
  const configured = Number(localStorage.getItem('idlegrid.partSize'));
  return Number.isInteger(configured) && configured > 0 ? configured : DEFAULT_PART;
}

function fileKey(file) {
  return `${file.name}|${file.size}|${file.lastModified}`;
}

function pendingAll() {
  try { return JSON.parse(localStorage.getItem(PENDING) || '{}') || {}; } catch { return {}; }
}

function savePending(all) {
  localStorage.setItem(PENDING, JSON.stringify(all));
}

/** The unfinished upload of this file, if one is remembered: { job, name, size, lastModified, partSize }. */
export function pendingUpload(file) {
  if (!(file instanceof File)) return null;
  return pendingAll()[fileKey(file)] || null;
}

export function rememberUpload(file, job, size) {
  if (!(file instanceof File)) return;
  const all = pendingAll();
  all[fileKey(file)] = { job, name: file.name, size: file.size, lastModified: file.lastModified, partSize: size };
  savePending(all);
}

export function forgetUpload(file) {
  if (!(file instanceof File)) return;
  const all = pendingAll();
  delete all[fileKey(file)];
  savePending(all);
}

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** PUTs one part with XMLHttpRequest so that its progress can be shown. */
function putPart(jobId, n, buffer, sha256, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/v1/jobs/${jobId}/input/parts/${n}`);
    xhr.setRequestHeader('Authorization', `Bearer ${session.secret}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('x-content-sha256', sha256);
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try { resolve(JSON.parse(xhr.responseText)); } catch { resolve({ part: n }); }
        return;
      }
      errorFrom(new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText })).then(reject, reject);
    };
    xhr.onerror = () => reject(new UploadInterrupted(`the upload of part ${n + 1} was interrupted (network error)`));
    xhr.onabort = () => reject(new UploadInterrupted(`the upload of part ${n + 1} was aborted`));
    xhr.send(buffer);
  });
}

export class UploadInterrupted extends Error {
  constructor(message) { super(message); this.name = 'UploadInterrupted'; }
}

/**
 * Uploads `blob` as job `jobId`'s input in parts. `onProgress({sent, total, part, parts,
 * skipped})` is called as bytes go out. Parts the server already holds with the same SHA-256
 * are skipped. Network errors are retried twice per part. Returns the input receipt.
 */
export async function uploadInParts(jobId, blob, { size = partSize(), onProgress = () => {}, signal } = {}) {
  const total = blob.size;
  const parts = Math.max(1, Math.ceil(total / size));
  const listed = await api(`/v1/jobs/${jobId}/input/parts`);
  const have = new Map(((listed && listed.parts) || []).map((p) => [p.part, p]));
  let done = 0;
  let skipped = 0;
  for (let n = 0; n < parts; n += 1) {
    if (signal && signal.aborted) throw new UploadInterrupted('the upload was stopped');
    const start = n * size;
    const buffer = await blob.slice(start, Math.min(total, start + size)).arrayBuffer();
    const sha256 = await sha256Hex(buffer);
    const known = have.get(n);
    if (known && known.sha256 === sha256 && Number(known.size) === buffer.byteLength) {
      skipped += 1;
      done += buffer.byteLength;
      onProgress({ sent: done, total, part: n, parts, skipped });
      continue;
    }
    for (let attempt = 0; ; attempt += 1) {
      try {
        await putPart(jobId, n, buffer, sha256, (loaded) => onProgress({ sent: done + loaded, total, part: n, parts, skipped }));
        break;
      } catch (e) {
        if (!(e instanceof UploadInterrupted) || attempt >= 2) throw e;
        await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
      }
    }
    done += buffer.byteLength;
    onProgress({ sent: done, total, part: n, parts, skipped });
  }
  return api(`/v1/jobs/${jobId}/input/complete`, { method: 'POST', body: { parts } });
}
