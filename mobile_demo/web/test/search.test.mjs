// The semantic-search page (kbert/demo/web/search.html) in a real browser: Debian's
// chromium (headless) through playwright-core, against `kbert demo EXPORT_DIR` of an embed
// model's export on a free localhost port.
//
//   python mobile_demo/web/test/search_reference.py exports/minilm --corpus s.txt \
//     --query "how do I change my password" --out ref.json
//   KBERT_SEARCH_EXPORT=exports/minilm KBERT_SEARCH_REFERENCE=ref.json \
//   KBERT_SEARCH_SCREENSHOT=shot.png node --test mobile_demo/web/test/search.test.mjs
//
// KBERT_SEARCH_EXPORT       an embed model's export dir (required; the test is skipped without it)
// KBERT_SEARCH_REFERENCE    JSON from test/search_reference.py (required): the corpus, the queries,
//                           Python ai_edge_litert vectors and the NumPy rankings
// KBERT_SEARCH_MIN_COSINE   least cosine between a page vector and Python's (default 0.9999)
// KBERT_SEARCH_SCORE_TOL    most a shown score may differ from NumPy's (default 1e-4)
// KBERT_SEARCH_SCREENSHOT   where to save a phone-viewport screenshot (390x844 @3x)
// KBERT_SEARCH_SHOT_QUERY   the query shown in the screenshot (default: the reference's first)
// KBERT_SEARCH_RESULT       optional: write the measured figures there as JSON
// KBERT_DEMO_PYTHON, KBERT_DEMO_CHROMIUM, KBERT_DEMO_THREADS=0, KBERT_DEMO_OFFLINE=0,
// KBERT_DEMO_VERBOSE=1      as for browser.test.mjs

import assert from 'node:assert/strict';
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {dirname, resolve} from 'node:path';
import {after, before, test} from 'node:test';

import {median, startDemo, stopDemo} from './demo_server.mjs';

const env = process.env;
const exportDir = env.KBERT_SEARCH_EXPORT;
const chromiumPath = env.KBERT_DEMO_CHROMIUM || '/usr/bin/chromium';
const minCosine = Number(env.KBERT_SEARCH_MIN_COSINE || 0.9999);
const scoreTol = Number(env.KBERT_SEARCH_SCORE_TOL || 1e-4);
const skip = !exportDir ? 'set KBERT_SEARCH_EXPORT to an embed export dir' :
  !env.KBERT_SEARCH_REFERENCE ? 'set KBERT_SEARCH_REFERENCE (test/search_reference.py)' :
  !existsSync(chromiumPath) ? `no browser at ${chromiumPath} (apt-get install chromium)` : false;
const ref = skip ? null : JSON.parse(readFileSync(env.KBERT_SEARCH_REFERENCE, 'utf8'));
const mode = ref?.mode || 'float32';
const EMBED_TIMEOUT = 600000;

let server;
let browser;
let page;
let url;
const figures = {mode, pasted: null, loaded: null, queries: [], pageErrors: []};

const dot = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0);
const cosine = (a, b) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));

// Waits for the embedding started by `action` (a click or a file load) to finish.
async function embedVia(action) {
  const stats = page.locator('#corpus-stats');
  const before = Number(await stats.getAttribute('data-count') || 0);
  await action();
  await page.waitForFunction((n) => Number(document.getElementById('corpus-stats').dataset.count || 0) > n ||
    document.getElementById('status').classList.contains('error'), before, {timeout: EMBED_TIMEOUT});
  const error = await page.locator('#status.error').count();
  assert.equal(error, 0, await page.locator('#status').textContent());
  return page.evaluate(() => ({summary: window.kbertSearch.summary(), vectors: window.kbertSearch.vectors(),
    ids: window.kbertSearch.ids(), docs: Number(document.getElementById('corpus-stats').dataset.docs)}));
}

// Page vectors vs Python's for the reference's first `vectors.length` sentences.
function compareVectors(shown) {
  assert.equal(shown.vectors.length, shown.docs);
  const cosines = shown.vectors.map((v, i) => {
    assert.deepEqual(shown.ids[i], ref.corpus_ids[i], `token ids of ${JSON.stringify(ref.corpus[i])}`);
    assert.equal(v.length, ref.dim);
    return cosine(v, ref.corpus_vectors[i]);
  });
  const min = Math.min(...cosines);
  const mean = cosines.reduce((a, b) => a + b, 0) / cosines.length;
  const worst = cosines.indexOf(min);
  assert.ok(min >= minCosine, `cosine ${min} < ${minCosine} for ${JSON.stringify(ref.corpus[worst])}`);
  return {sentences: cosines.length, minCosine: min, meanCosine: mean, medianMs: shown.summary.medianMs,
    totalMs: shown.summary.totalMs, truncated: shown.summary.truncated};
}

// Types `query` like a user, presses Enter and returns what the page shows.
async function typeAndSearch(query, k) {
  await page.selectOption('#k', String(k));
  const box = page.locator('#query');
  await box.fill('');
  await box.pressSequentially(query);
  await box.press('Enter');
  await page.waitForFunction((q) => document.getElementById('results').dataset.query === q, query,
      {timeout: 60000});
  return page.evaluate(() => ({hits: JSON.parse(document.getElementById('results').dataset.hits),
    shown: Array.from(document.querySelectorAll('#results li .text'), (e) => e.textContent),
    last: window.kbertSearch.last()}));
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
  const context = await browser.newContext({viewport: {width: 390, height: 844}, deviceScaleFactor: 3,
    isMobile: true, hasTouch: true});
  page = await context.newPage();
  page.on('pageerror', (e) => figures.pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (env.KBERT_DEMO_VERBOSE && ['error', 'warning'].includes(m.type())) console.log(`[page ${m.type()}] ${m.text()}`);
  });
});

after(async () => {
  await browser?.close();
  await stopDemo(server);
  if (env.KBERT_SEARCH_RESULT) writeFileSync(env.KBERT_SEARCH_RESULT, JSON.stringify(figures, null, 1));
});

test('the demo opens the search page for an embed export', {skip}, async () => {
  await page.goto(`${url}?mode=${mode}${env.KBERT_DEMO_THREADS === '0' ? '&threads=0' : ''}`);
  await page.waitForURL(/\/search\.html\?/, {timeout: 60000});
  const info = await page.evaluate(() => window.kbertSearch.ready);
  console.log(`search: ${info.name} (${info.task}) mode ${info.mode}, seq_len ${info.seqLen}, dim ${info.dim}, ` +
    `runtime ${info.runtime}`);
  figures.info = info;
  assert.equal(info.task, 'embed');
  assert.equal(info.mode, mode);
  assert.equal(info.seqLen, ref.seq_len);
  assert.equal(info.dim, ref.dim);
});

test('pasted sentences are embedded on the device as Python ai_edge_litert does', {skip}, async () => {
  const n = Math.min(20, ref.corpus.length);
  // Blank lines between sentences are skipped.
  await page.locator('#corpus').fill(ref.corpus.slice(0, n).join('\n\n'));
  assert.equal(await page.locator('#embed').textContent(), `Embed ${n} sentences`);
  const shown = await embedVia(() => page.locator('#embed').click());
  figures.pasted = compareVectors(shown);
  console.log(`pasted ${n}: min cosine ${figures.pasted.minCosine.toFixed(7)}`);
});

test('a loaded file of sentences is embedded with progress, vectors as Python\'s', {skip}, async () => {
  // A byte-order mark, CRLF line ends and blank lines, as a file from another system may have.
  const rows = [];
  const lines = [];
  ref.corpus.forEach((sentence, i) => {
    if (i % 7 === 3) rows.push('   ');
    rows.push(sentence);
    lines.push(rows.length);
  });
  const buffer = Buffer.from('\uFEFF' + rows.join('\r\n') + '\r\n', 'utf8');
  let sawProgress = false;
  const shown = await embedVia(async () => {
    await page.locator('#file').setInputFiles({name: 'sentences.txt', mimeType: 'text/plain', buffer});
    // The progress bar shows while a long corpus is embedded.
    sawProgress = await page.locator('#progress').isVisible().catch(() => false);
  });
  assert.equal(shown.docs, ref.corpus.length);
  figures.loaded = {...compareVectors(shown), sawProgress};
  figures.lines = lines;
  console.log(`loaded ${shown.docs} sentences: cosine to Python min ${figures.loaded.minCosine.toFixed(7)}, ` +
    `mean ${figures.loaded.meanCosine.toFixed(7)}; ${shown.summary.totalMs.toFixed(0)} ms in all, ` +
    `median ${shown.summary.medianMs.toFixed(2)} ms a sentence, ${shown.summary.truncated} cut at seq_len`);
});

test('typed queries return the NumPy ranking with its scores', {skip}, async () => {
  const k = ref.k;
  let exact = 0;
  let top1 = 0;
  let maxScoreDiff = 0;
  for (const [q, query] of ref.queries.entries()) {
    const shown = await typeAndSearch(query, k);
    assert.deepEqual(shown.last.ids, ref.query_ids[q], `token ids of ${JSON.stringify(query)}`);
    const want = ref.rankings[q];
    assert.equal(shown.hits.length, want.indices.length);
    shown.hits.forEach(([index, score], r) => {
      // Python's score of the document the page put at rank r is Python's r-th best
      // (equal up to float noise: near-ties may swap), and the shown score is it.
      const numpyScore = dot(ref.query_vectors[q], ref.corpus_vectors[index]);
      assert.ok(Math.abs(numpyScore - want.scores[r]) <= scoreTol,
          `${JSON.stringify(query)} rank ${r + 1}: page doc ${index} (NumPy ${numpyScore}) vs NumPy's ` +
          `${want.indices[r]} (${want.scores[r]})`);
      maxScoreDiff = Math.max(maxScoreDiff, Math.abs(score - want.scores[r]));
      assert.equal(shown.last.hits[r].line, figures.lines[index]);
      assert.equal(shown.shown[r], ref.corpus[index]);
    });
    const same = JSON.stringify(shown.hits.map((h) => h[0])) === JSON.stringify(want.indices);
    exact += same;
    top1 += shown.hits[0][0] === want.indices[0];
    figures.queries.push({query, indices: shown.hits.map((h) => h[0]), scores: shown.hits.map((h) => h[1]),
      numpy: want.indices, sameOrder: same, queryMs: shown.last.queryMs, searchMs: shown.last.searchMs});
    console.log(`${JSON.stringify(query)}: ${shown.hits.slice(0, 3).map(([i, s]) =>
      `${s.toFixed(4)} ${JSON.stringify(ref.corpus[i].slice(0, 40))}`).join(' | ')}` +
      `${same ? '' : ' (order differs from NumPy within ties)'} query ${shown.last.queryMs.toFixed(2)} ms, ` +
      `search ${shown.last.searchMs.toFixed(2)} ms`);
  }
  Object.assign(figures, {topKSameOrder: exact / ref.queries.length, top1Agreement: top1 / ref.queries.length,
    maxScoreDiff, queryMedianMs: median(figures.queries.map((q) => q.queryMs)),
    searchMedianMs: median(figures.queries.map((q) => q.searchMs))});
  console.log(`top-${k} in NumPy's order: ${exact}/${ref.queries.length}; top-1: ${top1}/${ref.queries.length}; ` +
    `max |score - NumPy| ${maxScoreDiff.toExponential(2)} (tolerance ${scoreTol})`);
  assert.ok(maxScoreDiff <= scoreTol);
});

test('phone screenshot', {skip}, async () => {
  const query = env.KBERT_SEARCH_SHOT_QUERY || ref.queries[0];
  await typeAndSearch(query, 5);
  await page.evaluate(() => window.scrollTo(0, 0));
  if (env.KBERT_SEARCH_SCREENSHOT) {
    mkdirSync(dirname(resolve(env.KBERT_SEARCH_SCREENSHOT)), {recursive: true});
    await page.screenshot({path: env.KBERT_SEARCH_SCREENSHOT});
    figures.screenshot = resolve(env.KBERT_SEARCH_SCREENSHOT);
    console.log(`screenshot: ${figures.screenshot}`);
  }
  assert.deepEqual(figures.pageErrors, []);
});

test('Stop ends a long embedding and keeps the index', {skip}, async () => {
  const before = await page.evaluate(() => window.kbertSearch.summary());
  const copies = Math.ceil(2000 / ref.corpus.length);
  // Set in the page (typing 2000 lines would take long), then Embed and, at the first
  // progress report, Stop: clicked from inside the page, so no round trip can miss it.
  const stopped = await page.evaluate((text) => new Promise((resolve) => {
    const corpus = document.getElementById('corpus');
    corpus.value = text;
    corpus.dispatchEvent(new Event('input'));
    const [status, button] = [document.getElementById('status'), document.getElementById('embed')];
    const observer = new MutationObserver(() => {
      if (!status.textContent.startsWith('Embedding')) return;
      observer.disconnect();
      const label = button.textContent;
      button.click();
      resolve(label);
    });
    observer.observe(status, {childList: true, characterData: true, subtree: true});
    button.click();
  }), Array(copies).fill(ref.corpus.join('\n')).join('\n'));
  assert.equal(stopped, 'Stop');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Stopped after'));
  assert.deepEqual(await page.evaluate(() => window.kbertSearch.summary()), before);
  assert.equal(await page.locator('#embed').textContent(), `Embed ${copies * ref.corpus.length} sentences`);
  const result = await typeAndSearch(ref.queries[0], ref.k);
  assert.deepEqual(result.hits.map((h) => h[0]), figures.queries[0].indices);
});

test('works offline once loaded (service worker), the corpus remembered', {skip: skip ||
    env.KBERT_DEMO_OFFLINE === '0'}, async () => {
  assert.ok(await page.evaluate(() => Boolean(navigator.serviceWorker.controller)), 'the service worker controls the page');
  await stopDemo(server);
  await page.reload();
  const info = await page.evaluate(() => window.kbertSearch.ready);
  assert.equal(info.mode, mode);
  const remembered = await page.locator('#corpus').inputValue();
  assert.ok(remembered.includes(ref.corpus[ref.corpus.length - 1]), 'the loaded corpus is remembered');
  const shown = await embedVia(() => page.locator('#embed').click());
  assert.equal(shown.docs, ref.corpus.length);
  compareVectors(shown);
  const result = await typeAndSearch(ref.queries[0], ref.k);
  assert.equal(result.hits[0][0], figures.queries[0].indices[0]);
  figures.offline = true;
  console.log('offline: reloaded with the server stopped, embedded the remembered corpus and searched');
});
