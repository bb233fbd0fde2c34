// Server-sent events read with fetch (EventSource cannot send an Authorization header).

import { checkSession, errorFrom, session } from './api.js';

/**
 * Follows `path`'s event stream, calling `onEvent(name, data)` for each event (`data` parsed
 * as JSON when it is JSON). Reconnects after a dropped stream unless `shouldStop()` says the
 * stream is done. `onError(error)` hears error answers (the stream then stops). Returns a
 * function that stops following.
 */
export function follow(path, { onEvent, onError, shouldStop = () => false, retryMs = 1500 }) {
  const controller = new AbortController();
  let stopped = false;
  const stop = () => { stopped = true; controller.abort(); };

  (async () => {
    while (!stopped) {
      try {
        const secret = session.secret;
        const response = await fetch(path, {
          headers: { Accept: 'text/event-stream', Authorization: `Bearer ${secret}` },
          signal: controller.signal,
          cache: 'no-store',
        });
        if (!response.ok) {
          const error = await errorFrom(response);
          checkSession(error, secret);
          if (onError) onError(error);
          return;
        }
        await read(response.body, onEvent);
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
      }
      if (stopped || shouldStop()) return;
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  })();
  return stop;
}

async function read(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let name = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (data.length) dispatch(onEvent, name, data.join('\n'));
        name = 'message';
        data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const key = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (key === 'event') name = val;
        else if (key === 'data') data.push(val);
      }
    }
  }
}

function dispatch(onEvent, name, text) {
  let data = text;
  try { data = JSON.parse(text); } catch { /* plain text */ }
  onEvent(name, data);
}
