// The JS tokenizer against golden ids from kbert's Python tokenizer
// (mobile_demo/shared/golden_tokens.json, written by make_golden.py).
//
//   node --test mobile_demo/web/test/tokenizer.test.mjs

import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {WordPieceTokenizer, basicSplit, normalize} from '../../../kbert/demo/web/tokenizer.js';

const here = dirname(fileURLToPath(import.meta.url));
const shared = join(here, '..', '..', 'shared');
const golden = JSON.parse(readFileSync(join(shared, 'golden_tokens.json'), 'utf8'));
const tokenizer = new WordPieceTokenizer(readFileSync(join(shared, golden.vocab), 'utf8'),
    {lowercase: golden.lowercase});

test('vocab loads with ids = line index', () => {
  assert.equal(tokenizer.tokens.length, 30522);
  assert.deepEqual([tokenizer.padId, tokenizer.unkId, tokenizer.clsId, tokenizer.sepId],
      [0, 100, 101, 102]);
});

test('normalization and splitting', () => {
  assert.equal(normalize('Héllo\tWÖRLD\u0000!', true), 'hello world!');
  assert.equal(normalize('Héllo', false), 'Héllo');
  assert.equal(normalize('ΟΔΟΣ', true), 'οδοσ');
  assert.deepEqual(basicSplit("it's 中文 a-b"), ['it', "'", 's', '中', '文', 'a', '-', 'b']);
});

test(`all ${golden.cases.length} golden cases match kbert's Python tokenizer`, () => {
  const failures = [];
  for (const [i, c] of golden.cases.entries()) {
    const out = tokenizer.encode(c.text, golden.seq_len);
    const same = JSON.stringify(out.pieces) === JSON.stringify(c.pieces) &&
      JSON.stringify(Array.from(out.ids)) === JSON.stringify(c.ids) &&
      JSON.stringify(Array.from(out.mask)) === JSON.stringify(c.mask) &&
      out.segment_ids.every((s) => s === 0);
    if (!same) {
      failures.push(`#${i} ${JSON.stringify(c.text.slice(0, 60))}: ` +
        `js ${JSON.stringify(out.pieces.slice(0, 20))} python ${JSON.stringify(c.pieces.slice(0, 20))}`);
    }
  }
  console.log(`tokenizer agreement: ${golden.cases.length - failures.length}/${golden.cases.length} golden cases`);
  assert.deepEqual(failures, []);
});

test('empty input packs to [CLS] [SEP]', () => {
  const out = tokenizer.encode('', 8);
  assert.deepEqual(Array.from(out.ids), [101, 102, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(out.mask), [1, 1, 0, 0, 0, 0, 0, 0]);
});

test('long words become [UNK]; truncation keeps [SEP] last', () => {
  assert.deepEqual(tokenizer.tokenize('a'.repeat(101)), [100]);
  const out = tokenizer.encode('word '.repeat(20), 6);
  assert.deepEqual(Array.from(out.ids), [101, 2773, 2773, 2773, 2773, 102]);
});
