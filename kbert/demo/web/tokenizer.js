// BERT WordPiece tokenizer in plain JavaScript (an ES module for the browser and node).
//
// It reproduces kbert.tokenization.BertTokenizer (Hugging Face BertTokenizer text
// handling + tf-text FastBertTokenizer splitting) so that the phone feeds the model
// exactly the ids the Python side would:
//
//   1. clean: tab / newline / carriage return become spaces; U+FFFD and every
//      control, format, private-use or surrogate character (Cc Cf Co Cs) is dropped;
//   2. when lowercasing (BERT uncased, model_card.json "lowercase"): NFD, drop
//      nonspacing marks (Mn, i.e. accents), then lowercase ("Σ" always to "σ");
//   3. split on whitespace, then split off every punctuation character (Unicode P*
//      plus the ASCII symbols !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) and every CJK
//      ideograph as a word of its own;
//   4. greedy longest-match-first WordPiece on each word ("##" continuation pieces);
//      a word of more than 100 characters, or one that cannot be split, is [UNK];
//   5. pack: [CLS] pieces[:seqLen-2] [SEP], padded with [PAD] (0) to seqLen, with a
//      mask of 1 for real tokens and segment ids all 0.

export const MAX_CHARS_PER_WORD = 100;
const SUFFIX = '##';

// RE2's \p{C} (used on the Python side) has no Cn: unassigned code points are kept.
const DROP = /[\uFFFD\p{Cc}\p{Cf}\p{Co}\p{Cs}]/gu;
const MARKS = /\p{Mn}/gu;
const SPACE = /^\p{White_Space}$/u;
const PUNCT = /^\p{P}$/u;

function isPunctuation(cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126)) {
    return true;
  }
  return cp > 127 && PUNCT.test(String.fromCodePoint(cp));
}

// The CJK Unified Ideographs blocks BERT splits into single characters.
function isCjk(cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
    (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
    (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
    (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/** Text normalization as in kbert.tokenization.normalize_text. */
export function normalize(text, lowercase = true) {
  let out = String(text).replace(/[\t\n\r]/g, ' ').replace(DROP, '');
  if (lowercase) {
    out = out.normalize('NFD').replace(MARKS, '').replace(/Σ/g, 'σ').toLowerCase();
  }
  return out;
}

/** Whitespace + punctuation + CJK split of normalized text into words. */
export function basicSplit(text) {
  const words = [];
  let word = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (SPACE.test(ch)) {
      if (word) words.push(word);
      word = '';
    } else if (isPunctuation(cp) || isCjk(cp)) {
      if (word) words.push(word);
      words.push(ch);
      word = '';
    } else {
      word += ch;
    }
  }
  if (word) words.push(word);
  return words;
}

/** Parse vocab.txt text (one token a line; id = line index). */
export function parseVocab(text) {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => line.replace(/\r$/, ''));
}

export class WordPieceTokenizer {
  /**
   * @param {string[]|string} vocab tokens indexed by id, or the text of vocab.txt.
   * @param {{lowercase?: boolean}} options lowercase + strip accents (uncased BERT).
   */
  constructor(vocab, {lowercase = true} = {}) {
    const tokens = typeof vocab === 'string' ? parseVocab(vocab) : Array.from(vocab);
    this.tokens = tokens;
    this.lowercase = Boolean(lowercase);
    this.ids = new Map();
    tokens.forEach((t, i) => { if (!this.ids.has(t)) this.ids.set(t, i); });
    for (const special of ['[PAD]', '[UNK]', '[CLS]', '[SEP]']) {
      if (!this.ids.has(special)) throw new Error(`vocab has no ${special} token`);
    }
    this.padId = this.ids.get('[PAD]');
    this.unkId = this.ids.get('[UNK]');
    this.clsId = this.ids.get('[CLS]');
    this.sepId = this.ids.get('[SEP]');
    this.maxTokenChars = tokens.reduce((m, t) => Math.max(m, [...t].length), 0);
  }

  /** WordPiece ids of one word (an array of one or more ids). */
  wordPieces(word) {
    const chars = [...word];
    if (chars.length > MAX_CHARS_PER_WORD) return [this.unkId];
    const pieces = [];
    let start = 0;
    while (start < chars.length) {
      let end = Math.min(chars.length, start + this.maxTokenChars);
      let id;
      while (end > start) {
        const piece = (start > 0 ? SUFFIX : '') + chars.slice(start, end).join('');
        id = this.ids.get(piece);
        if (id !== undefined) break;
        end -= 1;
      }
      if (end === start) return [this.unkId];
      pieces.push(id);
      start = end;
    }
    return pieces;
  }

  /** Wordpiece ids of a text, without [CLS]/[SEP] and untruncated. */
  tokenize(text) {
    const ids = [];
    for (const word of basicSplit(normalize(text, this.lowercase))) {
      for (const id of this.wordPieces(word)) ids.push(id);
    }
    return ids;
  }

  /**
   * The model inputs for one text: {ids, mask, segment_ids} as Int32Arrays of seqLen,
   * plus `pieces` (the untruncated wordpiece ids).
   */
  encode(text, seqLen) {
    if (!(seqLen >= 3)) throw new Error(`seqLen must be at least 3, got ${seqLen}`);
    const pieces = this.tokenize(text);
    const ids = new Int32Array(seqLen).fill(this.padId);
    const mask = new Int32Array(seqLen);
    const body = pieces.slice(0, seqLen - 2);
    const packed = [this.clsId, ...body, this.sepId];
    packed.forEach((id, i) => { ids[i] = id; mask[i] = 1; });
    return {ids, mask, segment_ids: new Int32Array(seqLen), pieces};
  }

  /** Token strings of ids (for display). */
  toTokens(ids) {
    return Array.from(ids, (i) => this.tokens[i]);
  }
}
