// kbert web demo, semantic search: sentences embedded on this device with an exported
// sentence embedder's .tflite (`kbert export` of an embed model: ids, mask, segment_ids
// in, `embedding` [1, dim] out), then typed queries ranked by cosine.
//
// index.html (app.js) sends an embed export here; this page sends any other back.
// The corpus is pasted or loaded from a text file, one sentence a line, and embedded
// one sentence per model call (LiteRT.js takes batch 1), with progress and a Stop
// button; it is kept in localStorage, the vectors only in memory. Queries search as
// you type (and on Enter). URL parameters as for index.html: ?mode=, ?threads=0.
//
// For tests and the console, window.kbertSearch exposes {ready, embedCorpus(text),
// search(query, k), vectors(), last(), load(mode), info}.

import {loadAndCompile} from '@litertjs/core';

import {
  INPUTS, fetchOk, loadDemoInfo, loadFirstWorking, median, ms, registerServiceWorker, runModel, serializer,
  setStatus, startLiteRt,
} from './page.js';
import {VectorIndex, parseDocuments} from './search_index.js';
import {WordPieceTokenizer} from './tokenizer.js';

const STORAGE_KEY = 'kbert-search-corpus';
const MAX_FILE_BYTES = 5e6; // ~50,000 sentences: more is a job for `kbert search`
const YIELD_MS = 40; // give the page a frame this often while embedding
const TYPING_MS = 250; // search this long after the last keystroke
// What the page offers on a first visit.
const SAMPLE = [
  'How do I reset my password?',
  'To change your password, open Settings, then Security.',
  'The app crashes when I open the camera.',
  'My phone battery drains quickly overnight.',
  'Where can I download my invoices?',
  'Refunds are paid back to the original card within five days.',
  'Can I use the app without an internet connection?',
  'Offline mode keeps your notes on the device until you reconnect.',
  'A man is playing a guitar on stage.',
  'A woman is slicing tomatoes in the kitchen.',
  'Children are playing football in the park.',
  'The cat is sleeping on the sofa.',
  'A dog is running along the beach.',
  'The stock market fell sharply today.',
  'Shares dropped as investors worried about interest rates.',
  'The central bank left interest rates unchanged.',
  'Heavy rain is expected over the weekend.',
  'It will be sunny and warm on Saturday.',
  'The train to Paris was cancelled because of a strike.',
  'Flights were delayed by fog at the airport.',
  'Mix the flour and butter, then add the eggs one at a time.',
  'Bake the bread for forty minutes until golden.',
  'The new phone has a brighter screen and a longer battery life.',
  'This laptop is light enough to carry all day.',
  'The museum is closed on Mondays.',
  'Tickets for the concert sold out in minutes.',
  'Drink water regularly when you exercise in the heat.',
  'Regular walks lower the risk of heart disease.',
  'The team won the championship after extra time.',
  'The striker scored twice in the second half.',
];

const $ = (id) => document.getElementById(id);
const state = {demo: null, card: null, tokenizer: null, model: null, mode: null, seqLen: 0, dim: 0,
  index: null, docs: null, count: 0, last: null, embedding: false, cancel: false, typing: 0,
  runtime: ''};

const seconds = (x) => (x < 1000 ? ms(x) : `${(x / 1000).toFixed(1)} s`);
const nextFrame = () => new Promise((resolve) => setTimeout(resolve, 0));

async function loadModel(mode) {
  setStatus(`Loading model_${mode}.tflite…`);
  const bytes = new Uint8Array(await (await fetchOk(`export/tflite/model_${mode}.tflite`)).arrayBuffer());
  const model = await loadAndCompile(bytes, {accelerator: 'wasm'});
  const inputs = model.getInputDetails();
  const names = inputs.map((d) => d.name);
  const missing = INPUTS.filter((n) => !names.includes(n));
  const outputs = model.getOutputDetails();
  const output = outputs.find((d) => d.name === 'embedding') ?? outputs[0];
  const outShape = output ? Array.from(output.shape) : [];
  if (missing.length || outShape.length !== 2) {
    model.delete();
    throw new Error(`model_${mode}.tflite has inputs ${names.join(', ')} and outputs ` +
      `${outputs.map((d) => `${d.name} [${Array.from(d.shape)}]`).join(', ')}; expected ` +
      `${INPUTS.join(', ')} in and one vector [1, dim] out (an embed model's export)`);
  }
  if (state.model) state.model.delete();
  const shape = Array.from(inputs.find((d) => d.name === 'ids').shape);
  Object.assign(state, {model, mode, seqLen: shape[shape.length - 1], dim: outShape[1],
    outputName: output.name});
  $('seq-len').textContent = String(state.seqLen);
  $('dim').textContent = String(state.dim);
  $('model-size').textContent = `${(bytes.length / 1e6).toFixed(1)} MB`;
  $('mode').value = mode;
  setStatus(`Ready: ${state.demo.name} (${mode}) runs on this device.`);
  return {mode, seqLen: state.seqLen, dim: state.dim};
}

// One sentence through the model; the latency covers the input tensors, model.run and reading the vector back.
async function embedOne(text) {
  const encoded = state.tokenizer.encode(text, state.seqLen);
  const start = performance.now();
  const outputs = await runModel(state.model, encoded, state.seqLen);
  let vector;
  try {
    vector = Array.from(await (outputs[state.outputName] ?? Object.values(outputs)[0]).data());
  } finally {
    Object.values(outputs).forEach((t) => t.delete());
  }
  return {vector, latencyMs: performance.now() - start, ids: encoded.ids,
    truncated: encoded.pieces.length > state.seqLen - 2};
}

function updateEmbedButton() {
  const button = $('embed');
  if (state.embedding) {
    button.textContent = 'Stop';
    button.disabled = false;
    return;
  }
  const n = parseDocuments($('corpus').value).texts.length;
  button.textContent = n ? `Embed ${n} sentence${n === 1 ? '' : 's'}` : 'Embed sentences';
  button.disabled = !state.model || !n;
}

// Embeds every non-blank line of `text` into a new index (the old one stays until
// this one is complete).
async function embedCorpus(text) {
  const docs = parseDocuments(text);
  if (!docs.texts.length) throw new Error('no sentences: paste some, one a line, or load a text file');
  const index = new VectorIndex(state.dim);
  const latencies = [];
  const ids = [];
  let truncated = 0;
  const progress = $('progress');
  Object.assign(progress, {max: docs.texts.length, value: 0, hidden: false});
  Object.assign(state, {embedding: true, cancel: false});
  updateEmbedButton();
  const start = performance.now();
  let lastYield = start;
  try {
    for (const [i, sentence] of docs.texts.entries()) {
      if (state.cancel) throw new Stopped(`Stopped after ${i} of ${docs.texts.length} sentences.`);
      const out = await embedOne(sentence);
      index.add(out.vector);
      latencies.push(out.latencyMs);
      ids.push(out.ids);
      truncated += out.truncated;
      if (performance.now() - lastYield > YIELD_MS || i === docs.texts.length - 1) {
        progress.value = i + 1;
        setStatus(`Embedding ${i + 1}/${docs.texts.length} on this device…`);
        await nextFrame();
        lastYield = performance.now();
      }
    }
  } finally {
    state.embedding = false;
    progress.hidden = true;
    updateEmbedButton();
  }
  const totalMs = performance.now() - start;
  Object.assign(state, {index, docs, ids, corpusText: text});
  try {
    localStorage.setItem(STORAGE_KEY, text);  // the corpus indexed last comes back on the next visit
  } catch {
    // private mode or quota: the corpus just is not remembered
  }
  const summary = {count: docs.texts.length, totalMs, medianMs: median(latencies), truncated, dim: state.dim,
    mode: state.mode};
  state.corpusSummary = summary;
  $('corpus-stats').hidden = false;
  $('doc-count').textContent = String(summary.count);
  $('embed-total').textContent = seconds(totalMs);
  $('embed-median').textContent = ms(summary.medianMs);
  $('truncated').textContent = String(truncated);
  const stats = $('corpus-stats');
  stats.dataset.count = String((Number(stats.dataset.count) || 0) + 1);
  stats.dataset.docs = String(summary.count);
  setStatus(`${summary.count} sentences embedded with ${state.demo.name} (${state.mode}). Type a query.`);
  $('query').disabled = false;
  $('search').disabled = false;
  if ($('query').value.trim()) await search($('query').value, Number($('k').value));
  return summary;
}

async function search(query, k) {
  if (!state.index) throw new Error('embed some sentences first');
  const t0 = performance.now();
  const out = await embedOne(query);
  const t1 = performance.now();
  const hits = state.index.search(out.vector, k).map((h, r) => ({rank: r + 1, index: h.index, score: h.score,
    line: state.docs.lines[h.index], text: state.docs.texts[h.index]}));
  const searchMs = performance.now() - t1;
  const result = {query, k, mode: state.mode, hits, queryMs: out.latencyMs, tokenizeAndRunMs: t1 - t0, searchMs,
    truncated: out.truncated};
  state.last = {...result, ids: Array.from(out.ids), vector: out.vector};
  render(result);
  return result;
}

function render(result) {
  const list = $('results');
  list.replaceChildren(...result.hits.map((hit) => {
    const item = document.createElement('li');
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = hit.text;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const score = document.createElement('b');
    score.textContent = hit.score.toFixed(4);
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${(100 * Math.max(0, hit.score)).toFixed(1)}%`;
    track.append(fill);
    const line = document.createElement('span');
    line.textContent = `#${hit.rank} · line ${hit.line}`;
    meta.append(score, track, line);
    item.append(text, meta);
    return item;
  }));
  // Full precision for tests and curious users.
  state.count += 1;
  Object.assign(list.dataset, {query: result.query, count: String(state.count),
    hits: JSON.stringify(result.hits.map((h) => [h.index, h.score]))});
  $('query-stats').hidden = false;
  $('query-ms').textContent = ms(result.queryMs);
  $('search-ms').textContent = ms(result.searchMs);
}

// Model calls run one at a time (LiteRT tensors and the model are shared).
const serial = serializer();

async function init() {
  $('offline').textContent = await registerServiceWorker();
  state.demo = await loadDemoInfo();
  const [card, vocabText] = await Promise.all([
    fetchOk('export/model_card.json').then((r) => r.json()),
    fetchOk('export/vocab.txt').then((r) => r.text()),
  ]);
  state.card = card;
  if (card.task !== 'embed') {  // a classifier (or other) export: its page is index.html
    location.replace(`index.html${location.search}`);
    return new Promise(() => {});
  }
  state.tokenizer = new WordPieceTokenizer(vocabText, {lowercase: card.lowercase ?? true});
  $('model-name').textContent = `${state.demo.name} · sentence embeddings · cosine search`;
  const select = $('mode');
  select.replaceChildren(...state.demo.modes.map((m) => new Option(m, m)));
  state.runtime = await startLiteRt();
  $('runtime').textContent = state.runtime;
  await loadFirstWorking(state.demo, loadModel);
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage unavailable: start from the sample
  }
  $('corpus').value = saved ?? SAMPLE.join('\n');
  select.disabled = false;
  updateEmbedButton();
  setStatus(`Ready: ${state.demo.name} (${state.mode}) runs on this device. Tap Embed to index the sentences.`);
  return {name: state.demo.name, task: card.task, mode: state.mode, modes: state.demo.modes, seqLen: state.seqLen,
    dim: state.dim, runtime: state.runtime};
}

// Stop pressed while a corpus is embedded (not an error: the old index stays).
class Stopped extends Error {}

function report(e) {
  if (e instanceof Stopped) setStatus(e.message);
  else setStatus(`Error: ${e.message}`, true);
}

async function onEmbed() {
  if (state.embedding) {
    state.cancel = true;
    return;
  }
  const text = $('corpus').value;
  try {
    await serial(() => embedCorpus(text));
  } catch (e) {
    report(e);
  }
}

async function onSearch() {
  clearTimeout(state.typing);
  const query = $('query').value;
  if (!state.index || !query.trim()) return;
  try {
    await serial(() => search(query, Number($('k').value)));
  } catch (e) {
    report(e);
  }
}

async function onFile(event) {
  const file = event.target.files[0];
  event.target.value = '';
  if (!file) return;
  if (file.size > MAX_FILE_BYTES) {
    report(new Error(`${file.name}: ${(file.size / 1e6).toFixed(1)} MB; the page takes up to ` +
      `${MAX_FILE_BYTES / 1e6} MB (use \`kbert search\` for more)`));
    return;
  }
  $('corpus').value = await file.text();
  $('corpus').scrollTop = 0;
  updateEmbedButton();
  await onEmbed();
}

$('embed').addEventListener('click', onEmbed);
$('corpus').addEventListener('input', updateEmbedButton);
$('file').addEventListener('change', onFile);
$('search').addEventListener('click', onSearch);
$('k').addEventListener('change', onSearch);
$('query').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') {
    e.target.blur(); // a phone's keyboard closes: the results show
    onSearch();
  }
});
$('query').addEventListener('input', () => {
  clearTimeout(state.typing);
  state.typing = setTimeout(onSearch, TYPING_MS);
});
$('mode').addEventListener('change', async (e) => {
  try {
    await serial(() => loadModel(e.target.value));
    // The vectors of the other model no longer match the queries': embed again.
    if (state.corpusText) await serial(() => embedCorpus(state.corpusText));
  } catch (err) {
    report(err);
  }
});

const ready = init().then((info) => {
  window.kbertSearch.info = info;
  return info;
}, (e) => {
  report(e);
  throw e;
});
window.kbertSearch = {
  ready,
  embedCorpus: (text) => serial(() => embedCorpus(text)),
  search: (query, k = 5) => serial(() => search(query, k)),
  // The corpus' unit vectors (row i: document i) and the token ids the page fed the model.
  vectors: () => (state.index ? Array.from({length: state.index.size}, (_, i) => Array.from(state.index.vector(i)))
    : []),
  ids: () => (state.ids ?? []).map((row) => Array.from(row)),
  summary: () => state.corpusSummary ?? null,
  last: () => state.last ?? null,
  load: (mode) => serial(() => loadModel(mode)),
  info: null,
};
