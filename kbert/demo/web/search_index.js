// Exact cosine search over sentence vectors, in plain JavaScript (an ES module for the
// browser and node). The page's counterpart of kbert.vectors.VectorIndex:
//
//   - documents: one a line; blank lines are skipped, the others keep their line
//     number (as `kbert search --corpus`);
//   - vectors are stored L2-normalised (an embedder's .tflite returns unit vectors only
//     when the model normalises), so a dot product is the cosine; stored in float32 (the
//     model's own precision: 50,000 MiniLM vectors take 77 MB), summed in doubles;
//   - the k best by cosine, best first, equal scores in corpus order
//     (kbert.embedding_metrics.cosine_top_k).
//
// Exact search costs n * dim multiply-adds per query: ~0.1 ms for a few hundred MiniLM
// vectors on a phone, still well under a second at 10^5.

/**
 * The documents of a pasted or loaded text: {texts, lines} (1-based line numbers).
 * A byte-order mark at the start is dropped; line endings are \n or \r\n.
 */
export function parseDocuments(text) {
  const texts = [];
  const lines = [];
  String(text).replace(/^\uFEFF/, '').split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim()) {
      texts.push(line);
      lines.push(i + 1);
    }
  });
  return {texts, lines};
}

/** `vector` divided by its L2 norm (floored at 1e-12, as torch's F.normalize), in doubles. */
export function unitVector(vector) {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.max(Math.sqrt(sum), 1e-12);
  return Float64Array.from(vector, (x) => x / norm);
}

/** Unit vectors of one dimension, added one at a time, searched by cosine. */
export class VectorIndex {
  /** @param {number} dim the vectors' dimension. */
  constructor(dim) {
    if (!(dim >= 1)) throw new Error(`dim must be positive, got ${dim}`);
    this.dim = dim;
    this.data = new Float32Array(0);
    this.size = 0;
  }

  /** Append one vector (any array-like of `dim` numbers); stored normalised. */
  add(vector) {
    if (vector.length !== this.dim) throw new Error(`vector has ${vector.length} values, expected ${this.dim}`);
    if ((this.size + 1) * this.dim > this.data.length) {
      const grown = new Float32Array(Math.max(this.dim * 64, this.data.length * 2));
      grown.set(this.data);
      this.data = grown;
    }
    this.data.set(unitVector(vector), this.size * this.dim);
    this.size += 1;
  }

  /** The stored (unit) vector of document `i`. */
  vector(i) {
    return this.data.subarray(i * this.dim, (i + 1) * this.dim);
  }

  /** Cosine of `query` (any vector of `dim`) to every document: a Float64Array of `size`. */
  scores(query) {
    if (query.length !== this.dim) throw new Error(`query has ${query.length} values, expected ${this.dim}`);
    const q = unitVector(query);
    const out = new Float64Array(this.size);
    for (let i = 0; i < this.size; i++) {
      let dot = 0;
      const base = i * this.dim;
      for (let j = 0; j < this.dim; j++) dot += q[j] * this.data[base + j];
      out[i] = dot;
    }
    return out;
  }

  /** The `k` nearest documents of `query`: [{index, score}], best first, ties in corpus order. */
  search(query, k = 10) {
    const scores = this.scores(query);
    const order = Array.from(scores.keys());
    order.sort((a, b) => scores[b] - scores[a] || a - b);
    return order.slice(0, Math.max(0, Math.min(k, this.size))).map((index) => ({index, score: scores[index]}));
  }
}
