// A wasm-host handler in JavaScript, against wasm-host's own `handler` world (`wit/`).
//
// Built with jco / componentize-js (see examples/polyglot/build.sh), default features:
//
//     jco componentize app.js --wit wit --world-name handler -o ANY.wasm
//
// Served at `js/notes/ANY.wasm`:
//   POST /js/notes  with a JSON object {"text": "..."} stores it under the next id of a shared
//                   counter and answers 201 {"id": 1, "text": "...", "language": "javascript"};
//                   a body that is not such JSON gets 400, one over 16 KiB gets 413 (early,
//                   from `stream`, before the rest is read);
//   GET  /js/notes?id=1  answers the stored note, 404 when there is none.
// Other methods get 405 with an `Allow` field.

import { get, increment, set } from 'wasm-host:http/kv@0.1.0';

const MAX_BODY = 16 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Per-request state; reset in `before`, since an instance may serve several requests in a row
// with --instance-reuse.
let request = null;
let chunks = [];
let received = 0;

function json(status, value, headers = []) {
  return {
    status,
    headers: [{ name: 'content-type', value: encoder.encode('application/json') }, ...headers],
    body: { tag: 'full', val: encoder.encode(JSON.stringify(value)) },
  };
}

function storeError(err) {
  // kv errors arrive as exceptions whose payload is the WIT `error` variant.
  const tag = err && err.payload && err.payload.tag;
  return json(tag === 'unavailable' ? 503 : 500, { error: tag ? `${tag}: ${err.payload.val}` : String(err) });
}

export function before(req) {
  request = req;
  chunks = [];
  received = 0;
  if (req.method !== 'GET' && req.method !== 'POST') {
    return { tag: 'respond', val: json(405, { error: `${req.method} is not allowed` }, [{ name: 'allow', value: encoder.encode('GET, POST') }]) };
  }
  return { tag: 'proceed' };
}

export function stream(chunk) {
  received += chunk.length;
  if (received > MAX_BODY) {
    return { tag: 'respond', val: json(413, { error: `a note is at most ${MAX_BODY} bytes` }) };
  }
  chunks.push(chunk);
  return { tag: 'proceed' };
}

function postNote() {
  let note;
  try {
    const body = new Uint8Array(received);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.length;
    }
    note = JSON.parse(decoder.decode(body));
  } catch (err) {
    return json(400, { error: `the body is not JSON: ${err.message}` });
  }
  if (note === null || typeof note !== 'object' || typeof note.text !== 'string') {
    return json(400, { error: 'expected a JSON object with a string "text"' });
  }
  try {
    const id = increment('js-notes:next-id', 1n);
    set(`js-notes:${id}`, encoder.encode(note.text), undefined);
    return json(201, { id: Number(id), text: note.text, language: 'javascript' });
  } catch (err) {
    return storeError(err);
  }
}

function getNote() {
  const id = new URLSearchParams(request.query).get('id');
  if (id === null || !/^[0-9]+$/.test(id)) {
    return json(400, { error: 'expected ?id=<number>' });
  }
  try {
    const text = get(`js-notes:${id}`);
    if (text === undefined) {
      return json(404, { error: `no note ${id}` });
    }
    return json(200, { id: Number(id), text: decoder.decode(text), language: 'javascript' });
  } catch (err) {
    return storeError(err);
  }
}

export function after() {
  return request.method === 'POST' ? postNote() : getNote();
}

export function nextChunk() {
  return undefined;
}

export function nextEvent() {
  return undefined;
}
