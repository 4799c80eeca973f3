// kbert web demo: classify typed text on this device with an exported .tflite model.
//
// Served by `kbert demo EXPORT_DIR` (see kbert/demo/server.py for the URL layout):
// demo.json names the export and its modes; export/ holds model_card.json, vocab.txt,
// labels.txt and tflite/model_<mode>.tflite; litert/ holds LiteRT.js and its wasm.
// URL parameters: ?mode=dynamic picks a model, ?threads=0 keeps LiteRT single-threaded.
//
// For tests and the console, window.kbertDemo exposes {ready, classify(text),
// benchmark(text, runs), load(mode), last(), info}.

import {loadAndCompile} from '@litertjs/core';

import {
  INPUTS, fetchOk, loadDemoInfo, loadFirstWorking, median, ms, registerServiceWorker, runModel, serializer,
  setStatus, startLiteRt,
} from './page.js';
import {WordPieceTokenizer} from './tokenizer.js';

const $ = (id) => document.getElementById(id);
const state = {demo: null, card: null, labels: [], tokenizer: null, model: null, mode: null, seqLen: 0,
  latencies: [], count: 0, last: null, runtime: ''};

function softmax(logits) {
  const max = Math.max(...logits);
  const exps = Array.from(logits, (x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

async function loadModel(mode) {
  setStatus(`Loading model_${mode}.tflite…`);
  const bytes = new Uint8Array(await (await fetchOk(`export/tflite/model_${mode}.tflite`)).arrayBuffer());
  const model = await loadAndCompile(bytes, {accelerator: 'wasm'});
  const inputs = model.getInputDetails();
  const names = inputs.map((d) => d.name);
  const missing = INPUTS.filter((n) => !names.includes(n));
  if (missing.length) {
    model.delete();
    throw new Error(`model_${mode}.tflite has inputs ${names.join(', ')}; expected ${INPUTS.join(', ')}`);
  }
  const shape = Array.from(inputs.find((d) => d.name === 'ids').shape);
  if (state.model) state.model.delete();
  state.model = model;
  state.mode = mode;
  state.seqLen = shape[shape.length - 1];
  state.latencies = [];
  $('seq-len').textContent = String(state.seqLen);
  $('model-size').textContent = `${(bytes.length / 1e6).toFixed(1)} MB`;
  $('mode').value = mode;
  setStatus(`Ready: ${state.demo.name} (${mode}) runs on this device.`);
  return {mode, seqLen: state.seqLen, inputs: names, outputs: model.getOutputDetails().map((d) => d.name)};
}

// One inference; the latency covers the input tensors, model.run and reading the scores
// back. A classifier's .tflite returns `probabilities` (older exports: `logits`, turned
// into probabilities here).
async function infer(encoded) {
  const start = performance.now();
  const outputs = await runModel(state.model, encoded, state.seqLen);
  const names = Object.keys(outputs);
  const output = outputs.probabilities ?? outputs.logits ?? outputs[names[0]];
  const values = Array.from(await output.data());
  const latencyMs = performance.now() - start;
  Object.values(outputs).forEach((t) => t.delete());
  if (!outputs.probabilities) return {probs: softmax(values), logits: values, latencyMs};
  const sum = values.reduce((a, b) => a + b, 0);  // float32 from the model: sum to 1 in doubles
  return {probs: values.map((p) => p / sum), latencyMs};
}

async function classify(text) {
  const t0 = performance.now();
  const encoded = state.tokenizer.encode(text, state.seqLen);
  const tokenizeMs = performance.now() - t0;
  const {probs, logits, latencyMs} = await infer(encoded);
  state.latencies.push(latencyMs);
  const top = probs.indexOf(Math.max(...probs));
  const labels = probs.map((_, i) => state.labels[i] ?? `class ${i}`);
  const tokens = encoded.pieces.length;
  const result = {text, mode: state.mode, label: labels[top], labels, probs, logits, latencyMs,
    tokenizeMs, medianMs: median(state.latencies), tokens,
    truncated: tokens > state.seqLen - 2};
  state.last = {...result, ids: Array.from(encoded.ids), mask: Array.from(encoded.mask)};
  render(result, encoded);
  return result;
}

function render(result, encoded) {
  $('result').hidden = false;
  const label = $('label');
  label.textContent = result.label;
  $('confidence').textContent = `${(100 * Math.max(...result.probs)).toFixed(1)}% confident · ${result.mode}`;
  const probs = $('probs');
  probs.replaceChildren(...result.probs.map((p, i) => {
    const row = document.createElement('div');
    row.className = 'prob' + (result.labels[i] === result.label ? ' top' : '');
    const name = document.createElement('div');
    name.className = 'name';
    const left = document.createElement('span');
    left.textContent = result.labels[i];
    const right = document.createElement('span');
    right.textContent = p.toFixed(4);
    name.append(left, right);
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    row.append(name, track);
    return row;
  }));
  // Full precision for tests and curious users.
  $('result').dataset.probs = JSON.stringify(result.probs);
  $('result').dataset.latencyMs = String(result.latencyMs);
  $('result').dataset.text = result.text;
  state.count += 1;
  $('result').dataset.count = String(state.count);
  $('latency').textContent = ms(result.latencyMs);
  $('latency-median').textContent = `${ms(result.medianMs)} (${state.latencies.length})`;
  $('tokenize-ms').textContent = ms(result.tokenizeMs);
  $('token-count').textContent = `${result.tokens + 2}/${state.seqLen}${result.truncated ? ' (cut)' : ''}`;
  const pieces = Array.from(encoded.ids.slice(0, result.tokens + 2).filter((_, i) => encoded.mask[i]));
  $('tokens').textContent = state.tokenizer.toTokens(pieces).join(' ');
}

async function benchmark(text, runs = 20) {
  const encoded = state.tokenizer.encode(text, state.seqLen);
  await infer(encoded); // warm-up
  const times = [];
  for (let i = 0; i < runs; i++) times.push((await infer(encoded)).latencyMs);
  const result = {mode: state.mode, runs, medianMs: median(times), minMs: Math.min(...times),
    maxMs: Math.max(...times)};
  $('bench-result').textContent = `median ${ms(result.medianMs)} (min ${ms(result.minMs)})`;
  return result;
}

// Actions run one at a time (LiteRT tensors and the model are shared).
const serial = serializer();

async function init() {
  $('offline').textContent = await registerServiceWorker();
  state.demo = await loadDemoInfo();
  const [card, labelsText, vocabText] = await Promise.all([
    fetchOk('export/model_card.json').then((r) => r.json()),
    fetchOk('export/labels.txt').then((r) => r.text()).catch(() => ''),
    fetchOk('export/vocab.txt').then((r) => r.text()),
  ]);
  state.card = card;
  if (card.task === 'embed') {  // a sentence embedder: the semantic-search page (search.js)
    location.replace(`search.html${location.search}`);
    return new Promise(() => {});
  }
  state.labels = labelsText.split('\n').map((l) => l.trim()).filter(Boolean);
  if (!state.labels.length) state.labels = card.labels ?? [];
  state.tokenizer = new WordPieceTokenizer(vocabText, {lowercase: card.lowercase ?? true});
  $('model-name').textContent = `${state.demo.name} · ${card.task ?? 'model'} · ${state.labels.join(' / ')}`;
  if (card.task && card.task !== 'classify') {
    throw new Error(`this demo shows text classifiers; ${state.demo.name} is a ${card.task} model`);
  }
  const select = $('mode');
  select.replaceChildren(...state.demo.modes.map((m) => new Option(m, m)));
  state.runtime = await startLiteRt();
  $('runtime').textContent = state.runtime;
  await loadFirstWorking(state.demo, loadModel);
  select.disabled = false;
  $('classify').disabled = false;
  $('bench').disabled = false;
  return {name: state.demo.name, mode: state.mode, modes: state.demo.modes, seqLen: state.seqLen,
    runtime: state.runtime, labels: state.labels};
}

async function onClassify() {
  const text = $('text').value;
  try {
    await serial(() => classify(text));
  } catch (e) {
    setStatus(`Error: ${e.message}`, true);
  }
}

$('classify').addEventListener('click', onClassify);
$('text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) onClassify();
});
$('mode').addEventListener('change', async (e) => {
  try {
    await serial(() => loadModel(e.target.value));
    if ($('text').value) await onClassify();
  } catch (err) {
    setStatus(`Error: ${err.message}`, true);
  }
});
$('bench').addEventListener('click', async () => {
  try {
    await serial(() => benchmark($('text').value || 'a gorgeous , witty , seductive movie .'));
  } catch (e) {
    setStatus(`Error: ${e.message}`, true);
  }
});

const ready = init().then((info) => {
  window.kbertDemo.info = info;
  return info;
}, (e) => {
  setStatus(`Error: ${e.message}`, true);
  throw e;
});
window.kbertDemo = {
  ready,
  classify: (text) => serial(() => classify(text)),
  benchmark: (text, runs) => serial(() => benchmark(text, runs)),
  load: (mode) => serial(() => loadModel(mode)),
  last: () => state.last ?? null,
  info: null,
};
