// The demo in a real browser: Debian's chromium (headless) through playwright-core,
// against `kbert demo EXPORT_DIR` on a free localhost port.
//
//   KBERT_DEMO_EXPORT=exports/sst2 KBERT_DEMO_REFERENCE=ref.json \
//   KBERT_DEMO_SCREENSHOT=shot.png node --test mobile_demo/web/test/browser.test.mjs
//
// KBERT_DEMO_EXPORT      export dir (required; the test is skipped without it)
// KBERT_DEMO_REFERENCE   JSON from test/reference.py: Python ai_edge_litert probabilities
//                        of the texts to type (required for the comparison)
// KBERT_DEMO_SCREENSHOT  where to save a phone-viewport screenshot (390x844 @3x)
// KBERT_DEMO_RESULT      optional: write the measured figures there as JSON
// KBERT_DEMO_TOLERANCE   max |browser - python| per probability (default 1e-5)
// KBERT_DEMO_PYTHON      python running kbert (default python3)
// KBERT_DEMO_CHROMIUM    browser binary (default /usr/bin/chromium)
// KBERT_DEMO_BENCH_RUNS  inferences in the latency benchmark (default 20)
// KBERT_DEMO_OFFLINE=0   skip the offline (service worker) check
// KBERT_DEMO_THREADS=0  run LiteRT single-threaded (as on a phone over plain http)
// KBERT_DEMO_VERBOSE=1   show the page's console warnings and errors

import assert from 'node:assert/strict';
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {dirname, resolve} from 'node:path';
import {after, before, test} from 'node:test';

import {median, startDemo, stopDemo} from './demo_server.mjs';

const env = process.env;
const exportDir = env.KBERT_DEMO_EXPORT;
const chromiumPath = env.KBERT_DEMO_CHROMIUM || '/usr/bin/chromium';
const tolerance = Number(env.KBERT_DEMO_TOLERANCE || 1e-5);
const benchRuns = Number(env.KBERT_DEMO_BENCH_RUNS || 20);
const skip = !exportDir ? 'set KBERT_DEMO_EXPORT to an export dir' :
  !existsSync(chromiumPath) ? `no browser at ${chromiumPath} (apt-get install chromium)` : false;
const reference = env.KBERT_DEMO_REFERENCE ?
  JSON.parse(readFileSync(env.KBERT_DEMO_REFERENCE, 'utf8')) : null;
const mode = reference?.mode || env.KBERT_DEMO_MODE || 'float32';

let server;
let browser;
let context;
let page;
let url;
const figures = {mode, texts: [], latencies: [], maxProbDiff: null};
const pageErrors = [];

// Types `text` into the page like a user and returns the result it shows.
async function typeAndClassify(text) {
  const before = Number(await page.locator('#result').getAttribute('data-count') || 0);
  const box = page.locator('#text');
  await box.fill('');
  if (text) await box.pressSequentially(text);
  await page.locator('#classify').click();
  await page.waitForFunction((n) => Number(document.getElementById('result').dataset.count || 0) > n,
      before, {timeout: 60000});
  const shown = await page.evaluate(() => {
    const r = document.getElementById('result');
    return {probs: JSON.parse(r.dataset.probs), latencyMs: Number(r.dataset.latencyMs), text: r.dataset.text,
      label: document.getElementById('label').textContent, last: window.kbertDemo.last()};
  });
  assert.equal(shown.text, text);
  return shown;
}

before(async () => {
  if (skip) return;
  const {chromium} = await import('playwright-core');
  server = await startDemo(exportDir, mode);
  url = server.url;
  browser = await chromium.launch({
    executablePath: chromiumPath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
  context = await browser.newContext({viewport: {width: 390, height: 844}, deviceScaleFactor: 3,
    isMobile: true, hasTouch: true});
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // LiteRT's wasm logs its INFO/WARNING lines to console.error: shown, not failures.
  page.on('console', (m) => {
    if (env.KBERT_DEMO_VERBOSE && ['error', 'warning'].includes(m.type())) {
      console.log(`[page ${m.type()}] ${m.text()}`);
    }
  });
});

after(async () => {
  await browser?.close();
  await stopDemo(server);
  if (env.KBERT_DEMO_RESULT) writeFileSync(env.KBERT_DEMO_RESULT, JSON.stringify(figures, null, 1));
});

test('the demo loads the export in the browser', {skip}, async () => {
  await page.goto(`${url}?mode=${mode}${env.KBERT_DEMO_THREADS === '0' ? '&threads=0' : ''}`);
  const info = await page.evaluate(() => window.kbertDemo.ready);
  console.log(`demo: ${info.name} mode ${info.mode} (${info.modes.join(', ')}), seq_len ${info.seqLen}, ` +
    `runtime ${info.runtime}, labels ${info.labels.join('/')}`);
  figures.info = info;
  assert.equal(info.mode, mode);
  if (reference) assert.equal(info.seqLen, reference.seq_len);
});

test('typed sentences give the Python ai_edge_litert probabilities', {skip}, async () => {
  const texts = reference ? reference.texts : ['a gorgeous , witty , seductive movie .', ''];
  let maxDiff = 0;
  for (const [i, text] of texts.entries()) {
    const shown = await typeAndClassify(text);
    figures.latencies.push(shown.latencyMs);
    const sum = shown.probs.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9, `probabilities sum to ${sum}`);
    let line = `${JSON.stringify(text.slice(0, 50))}: ${shown.label} ` +
      `[${shown.probs.map((p) => p.toFixed(6)).join(', ')}] ${shown.latencyMs.toFixed(2)} ms`;
    const row = {text, label: shown.label, probs: shown.probs, latencyMs: shown.latencyMs};
    if (reference) {
      assert.deepEqual(shown.last.ids, reference.ids[i], `token ids of ${JSON.stringify(text)}`);
      const diff = Math.max(...shown.probs.map((p, j) => Math.abs(p - reference.probs[i][j])));
      assert.equal(shown.probs.length, reference.probs[i].length);
      maxDiff = Math.max(maxDiff, diff);
      row.python = reference.probs[i];
      row.diff = diff;
      line += ` |diff| ${diff.toExponential(2)}`;
    }
    figures.texts.push(row);
    console.log(line);
  }
  console.log(`per-inference latency in the page: median ${median(figures.latencies).toFixed(2)} ms ` +
    `over ${figures.latencies.length} typed sentences (first includes warm-up)`);
  if (reference) {
    figures.maxProbDiff = maxDiff;
    console.log(`max |browser - python| probability: ${maxDiff.toExponential(3)} (tolerance ${tolerance})`);
    assert.ok(maxDiff <= tolerance, `max prob diff ${maxDiff} > ${tolerance}`);
  }
});

test('latency benchmark and phone screenshot', {skip}, async () => {
  const text = reference?.texts.find((t) => t) || 'a gorgeous , witty , seductive movie .';
  const bench = await page.evaluate(([t, n]) => window.kbertDemo.benchmark(t, n), [text, benchRuns]);
  figures.benchmark = bench;
  console.log(`benchmark (${bench.runs} runs, ${mode}): median ${bench.medianMs.toFixed(2)} ms, ` +
    `min ${bench.minMs.toFixed(2)} ms, max ${bench.maxMs.toFixed(2)} ms`);
  await typeAndClassify(text);
  if (env.KBERT_DEMO_SCREENSHOT) {
    mkdirSync(dirname(resolve(env.KBERT_DEMO_SCREENSHOT)), {recursive: true});
    await page.screenshot({path: env.KBERT_DEMO_SCREENSHOT});
    figures.screenshot = resolve(env.KBERT_DEMO_SCREENSHOT);
    console.log(`screenshot: ${figures.screenshot}`);
  }
  assert.deepEqual(pageErrors, []);
});

test('works offline once loaded (service worker)', {skip: skip || env.KBERT_DEMO_OFFLINE === '0'}, async () => {
  const controlled = await page.evaluate(() => Boolean(navigator.serviceWorker.controller));
  assert.ok(controlled, 'the service worker controls the page');
  await stopDemo(server);
  await page.reload();
  const info = await page.evaluate(() => window.kbertDemo.ready);
  assert.equal(info.mode, mode);
  const text = reference?.texts.find((t) => t) || 'a gorgeous , witty , seductive movie .';
  const shown = await typeAndClassify(text);
  if (reference) {
    const i = reference.texts.indexOf(text);
    const diff = Math.max(...shown.probs.map((p, j) => Math.abs(p - reference.probs[i][j])));
    assert.ok(diff <= tolerance, `offline diff ${diff}`);
  }
  figures.offline = true;
  console.log('offline: reloaded with the server stopped and classified from the cache');
});

test('search.html sends a classifier export to the classifier page', {skip}, async () => {
  // (After the offline check the pages come from the service worker's cache.)
  await page.goto(`${new URL('search.html', url).href}?mode=${mode}`);
  await page.waitForURL(/\/index\.html\?mode=/, {timeout: 60000});
  const info = await page.evaluate(() => window.kbertDemo.ready);
  assert.equal(info.mode, mode);
  assert.deepEqual(pageErrors, []);
});
