"""Python reference for the search page's browser test: an embed export's .tflite run
with `ai_edge_litert` on sentences tokenized by kbert's tokenizer, and the NumPy ranking
of each query (`kbert.embedding_metrics.cosine_top_k`, what `kbert search` uses).

    python mobile_demo/web/test/search_reference.py exports/minilm --corpus sentences.txt \
        --query "how do I change my password" --query "weather this weekend" --out ref.json

Writes {"export", "mode", "seq_len", "dim", "k", "corpus", "lines", "corpus_ids",
"corpus_vectors", "queries", "query_ids", "query_vectors", "rankings", "raw_norms"}:
vectors L2-normalised, `rankings[q]` = {"indices", "scores"} best first, `raw_norms`
the norms of the .tflite's own outputs (1 when the model normalises). The browser test
(KBERT_SEARCH_REFERENCE=ref.json, search.test.mjs) pastes the same corpus, types the
same queries and compares.
"""

import argparse
import json
import os

import numpy as np


def read_documents(path):
    """Non-blank lines of a UTF-8 file and their line numbers (as the page and `kbert search`)."""
    from kbert.io import iter_text_lines

    rows = [(number, line) for number, line in iter_text_lines(path) if line.strip()]
    return [r[1] for r in rows], [r[0] for r in rows]


def embed(export_dir, texts, mode="float32"):
    """(ids, raw vectors) of `texts` from tflite/model_<mode>.tflite, one call per text."""
    from ai_edge_litert.interpreter import Interpreter

    from kbert.tokenization import BertTokenizer

    with open(os.path.join(export_dir, "model_card.json"), encoding="utf-8") as f:
        card = json.load(f)
    interpreter = Interpreter(model_path=os.path.join(export_dir, "tflite", f"model_{mode}.tflite"))
    runner = interpreter.get_signature_runner("serving_default")
    seq_len = int(runner.get_input_details()["ids"]["shape"][-1])
    tokenizer = BertTokenizer(os.path.join(export_dir, "vocab.txt"), lowercase=card.get("lowercase", True))
    ids, vectors = [], []
    for start in range(0, len(texts), 256):
        packed = {k: np.asarray(v) for k, v in tokenizer(list(texts[start:start + 256]), seq_len=seq_len).items()}
        for i in range(len(packed["token_ids"])):
            out = runner(ids=packed["token_ids"][i:i + 1], mask=packed["padding_mask"][i:i + 1],
                         segment_ids=packed["segment_ids"][i:i + 1])
            vectors.append(np.asarray(out["embedding"] if "embedding" in out else next(iter(out.values())),
                                      np.float64)[0])
            ids.append(packed["token_ids"][i].tolist())
    return seq_len, ids, np.array(vectors).reshape(len(texts), -1)


def reference(export_dir, corpus, queries, mode="float32", k=10, lines=None):
    """The reference JSON (see the module docstring) as a dict."""
    from kbert.embedding_metrics import cosine_top_k, normalize_rows

    seq_len, corpus_ids, corpus_raw = embed(export_dir, corpus, mode)
    _, query_ids, query_raw = embed(export_dir, queries, mode)
    corpus_unit, query_unit = normalize_rows(corpus_raw), normalize_rows(query_raw)
    indices, scores = cosine_top_k(query_unit, corpus_unit, k=k, normalized=True)
    return {
        "export": os.path.abspath(export_dir), "mode": mode, "seq_len": seq_len, "dim": int(corpus_raw.shape[1]),
        "k": int(min(k, len(corpus))), "corpus": list(corpus), "lines": list(lines or range(1, len(corpus) + 1)),
        "corpus_ids": corpus_ids, "corpus_vectors": np.asarray(corpus_unit, np.float64).tolist(),
        "queries": list(queries), "query_ids": query_ids,
        "query_vectors": np.asarray(query_unit, np.float64).tolist(),
        "rankings": [{"indices": i.tolist(), "scores": s.astype(np.float64).tolist()} for i, s in zip(indices, scores)],
        "raw_norms": np.linalg.norm(np.concatenate([corpus_raw, query_raw]), axis=1).tolist(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir")
    parser.add_argument("--corpus", required=True, help="UTF-8 text file, one sentence a line (blank lines skipped).")
    parser.add_argument("--query", action="append", required=True, help="A query; repeatable.")
    parser.add_argument("--mode", default="float32")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    corpus, lines = read_documents(args.corpus)
    result = reference(args.export_dir, corpus, args.query, args.mode, args.k, lines)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    print(f"{len(corpus)} sentences, {len(args.query)} queries -> {args.out}")


if __name__ == "__main__":
    main()
