// What both demo pages (index.html/app.js: classify; search.html/search.js: semantic
// search) share: status line, checked fetches, timing helpers, the service worker and
// LiteRT.js start-up. Plain ES module, loaded without a build step like the pages.

import {Tensor, loadLiteRt} from '@litertjs/core';

// The inputs of every kbert .tflite file (kbert/export/tflite.py), bound by name.
export const INPUTS = ['ids', 'mask', 'segment_ids'];

export function setStatus(text, error = false) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.classList.toggle('error', error);
}

export async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

export function median(values) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const ms = (x) => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 2 : 1)} ms` : '–');

export async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return 'not supported';
  if (!window.isSecureContext) return 'needs https';
  try {
    await navigator.serviceWorker.register('sw.js');
    if (!navigator.serviceWorker.controller) {
      // First visit: let the worker take control (it claims clients on activation),
      // so that the model and runtime fetched next are cached for offline use.
      await Promise.race([
        new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve,
            {once: true})),
        new Promise((resolve) => setTimeout(resolve, 8000)),
      ]);
    }
    return navigator.serviceWorker.controller ? 'ready' : 'on next visit';
  } catch (e) {
    console.warn('service worker', e);
    return 'unavailable';
  }
}

// What `kbert demo` says of the export it serves (demo.json); a plain static host
// has none, so the modes are then tried in kbert's order.
export async function loadDemoInfo() {
  try {
    return await (await fetchOk('demo.json')).json();
  } catch {
    return {name: 'model', modes: ['float32', 'float16', 'dynamic', 'int8'], mode: 'float32'};
  }
}

// `?threads=0` in the page's URL keeps LiteRT single-threaded.
export async function startLiteRt() {
  // Threads need SharedArrayBuffer, i.e. a cross-origin isolated secure context
  // (the demo server sends COOP/COEP; a phone over plain http on the LAN has none).
  const wasmDir = new URL('litert/wasm/', location.href).href;
  const threads = new URLSearchParams(location.search).get('threads') !== '0';
  if (self.crossOriginIsolated && threads) {
    try {
      await loadLiteRt(wasmDir, {threads: true});
      return 'wasm, threads';
    } catch (e) {
      console.warn('LiteRT threads unavailable, loading single-threaded:', e.message);
    }
  }
  await loadLiteRt(wasmDir);
  return 'wasm';
}

// Runs actions one at a time (LiteRT tensors and the model are shared).
export function serializer() {
  let busy = Promise.resolve();
  return (fn) => {
    const run = busy.then(fn);
    busy = run.catch(() => {});
    return run;
  };
}

// Loads the model of the first mode that works: `?mode=` in the page's URL, then the
// export's default (demo.json), then the others; throws the last error if none does.
export async function loadFirstWorking(demo, loadModel) {
  const wanted = new URLSearchParams(location.search).get('mode');
  const order = [wanted, demo.mode, ...demo.modes].filter((m) => m && demo.modes.includes(m));
  let lastError = new Error('the export has no TFLite model');
  for (const mode of new Set(order)) {
    try {
      return await loadModel(mode);
    } catch (e) {
      console.warn(`model_${mode}.tflite`, e);
      lastError = e;
    }
  }
  throw lastError;
}

// One batch-1 call of `model` on `encoded` (the tokenizer's ids, mask and segment_ids
// padded to `seqLen`); the input tensors are freed here, the outputs by the caller.
export async function runModel(model, encoded, seqLen) {
  const shape = [1, seqLen];
  const tensors = Object.fromEntries(INPUTS.map((name) => [name, new Tensor(encoded[name], shape)]));
  try {
    return await model.run(tensors);
  } finally {
    Object.values(tensors).forEach((t) => t.delete());
  }
}
