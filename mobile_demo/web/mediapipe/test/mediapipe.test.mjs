// kbert's .tflite in MediaPipe Tasks for the web (@mediapipe/tasks-text: MediaPipe's C++
// core compiled to wasm) in Debian's headless chromium, raw text in, compared with the
// Python `mediapipe` package on the same file (tests/mobile_demo/test_mediapipe_web.py
// writes the reference with kbert.export.metadata.classify / embed).
//
//   KBERT_MP_CLASSIFIER=exports/sst2/tflite/model_dynamic.tflite KBERT_MP_REFERENCE=ref.json \
//   node --test mobile_demo/web/mediapipe/test/mediapipe.test.mjs
//
// KBERT_MP_CLASSIFIER   a classify .tflite with kbert's MediaPipe metadata
// KBERT_MP_EMBEDDER     an embed .tflite with kbert's MediaPipe metadata
// KBERT_MP_REFERENCE    JSON {"texts", "classifier": {"scores"}, "embedder": {"embeddings"}} (required)
// KBERT_MP_RESULT       optional: write the measured figures there as JSON
// KBERT_MP_TOLERANCE    max |browser - python| per score or vector element (default 1e-5)
// KBERT_MP_CHROMIUM     browser binary (default /usr/bin/chromium)

import assert from 'node:assert/strict';
import {existsSync, readFileSync, statSync, writeFileSync} from 'node:fs';
import {createServer} from 'node:http';
import {dirname, extname, join, resolve} from 'node:path';
import {after, before, test} from 'node:test';
import {fileURLToPath} from 'node:url';

const env = process.env;
const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tasksText = join(here, 'node_modules', '@mediapipe', 'tasks-text');
const chromiumPath = env.KBERT_MP_CHROMIUM || '/usr/bin/chromium';
const tolerance = Number(env.KBERT_MP_TOLERANCE || 1e-5);
const models = {classifier: env.KBERT_MP_CLASSIFIER, embedder: env.KBERT_MP_EMBEDDER};
const skip = !env.KBERT_MP_REFERENCE ? 'set KBERT_MP_REFERENCE (and KBERT_MP_CLASSIFIER / KBERT_MP_EMBEDDER)' :
  !existsSync(tasksText) ? 'run `npm ci --prefix mobile_demo/web/mediapipe` (@mediapipe/tasks-text)' :
  !existsSync(chromiumPath) ? `no browser at ${chromiumPath} (apt-get install chromium)` : false;
const reference = skip ? null : JSON.parse(readFileSync(env.KBERT_MP_REFERENCE, 'utf8'));
const figures = {tasksText: skip ? null : JSON.parse(readFileSync(join(tasksText, 'package.json'), 'utf8')).version};

const TYPES = {'.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.tflite': 'application/octet-stream'};

// Only these files: the page, the @mediapipe/tasks-text package and the models under test.
function route(path) {
  if (path === '/' || path === '/index.html') return join(here, 'index.html');
  if (path === '/mediapipe.js') return join(here, 'mediapipe.js');
  const model = path.match(/^\/models\/(classifier|embedder)\.tflite$/);
  if (model) return models[model[1]] || null;
  const asset = path.match(/^\/tasks-text\/((wasm\/)?[\w.]+)$/);
  return asset ? join(tasksText, asset[1]) : null;
}

let server;
let browser;
let page;

before(async () => {
  if (skip) return;
  server = createServer((req, res) => {
    const file = route(new URL(req.url, 'http://x').pathname);
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {'Content-Type': TYPES[extname(file)] || 'application/octet-stream'});
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const {chromium} = await import('playwright-core');
  browser = await chromium.launch({executablePath: chromiumPath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage']});
  page = await browser.newPage();
  const query = Object.entries(models).filter(([, p]) => p).map(([k]) => `${k}=/models/${k}.tflite`).join('&');
  await page.goto(`http://127.0.0.1:${server.address().port}/?${query}`);
  figures.loaded = await page.evaluate(() => window.kbertMediapipe.ready);
});

after(async () => {
  await browser?.close();
  server?.close();
  if (env.KBERT_MP_RESULT) writeFileSync(env.KBERT_MP_RESULT, JSON.stringify(figures, null, 1));
});

test('TextClassifier in the browser gives the Python MediaPipe scores', {skip: skip || !models.classifier},
    async () => {
  const {texts} = reference;
  const start = Date.now();
  const got = await page.evaluate((t) => window.kbertMediapipe.classify(t), texts);
  figures.classifierMsPerText = (Date.now() - start) / texts.length;
  let maxDiff = 0;
  let same = 0;
  for (const [i, {scores}] of got.entries()) {
    const want = reference.classifier.scores[i];
    assert.equal(scores.length, want.length);
    scores.forEach((s, j) => { maxDiff = Math.max(maxDiff, Math.abs(s - want[j])); });
    const top = (v) => v.indexOf(Math.max(...v));
    if (top(scores) === top(want)) same += 1;
  }
  Object.assign(figures, {classifierTexts: texts.length, classifierMaxDiff: maxDiff,
    classifierAgreement: same / texts.length, labels: got[0]?.labels});
  console.log(`classifier: ${texts.length} texts, top label agreement ${same}/${texts.length}, ` +
    `max |browser - python| ${maxDiff.toExponential(2)}, ${figures.classifierMsPerText.toFixed(1)} ms/text`);
  assert.ok(maxDiff <= tolerance, `max diff ${maxDiff} > ${tolerance}`);
  assert.equal(same, texts.length);
});

test('TextEmbedder in the browser gives the Python MediaPipe vectors', {skip: skip || !models.embedder}, async () => {
  const {texts} = reference;
  const got = await page.evaluate((t) => window.kbertMediapipe.embed(t), texts);
  let maxDiff = 0;
  let minCos = 1;
  for (const [i, v] of got.entries()) {
    const w = reference.embedder.embeddings[i];
    assert.equal(v.length, w.length);
    let dot = 0;
    let nv = 0;
    let nw = 0;
    v.forEach((x, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(x - w[j]));
      dot += x * w[j];
      nv += x * x;
      nw += w[j] * w[j];
    });
    minCos = Math.min(minCos, dot / Math.sqrt(nv * nw));
  }
  Object.assign(figures, {embedderTexts: texts.length, embedderMaxDiff: maxDiff, embedderMinCosine: minCos});
  console.log(`embedder: ${texts.length} texts, min cosine ${minCos.toFixed(7)}, ` +
    `max |browser - python| ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff <= tolerance, `max diff ${maxDiff} > ${tolerance}`);
});
