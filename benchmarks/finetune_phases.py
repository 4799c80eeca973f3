"""Where a whole fine-tune run spends its time: `kbert.finetune` vs the PyTorch reference.

Each run is a fresh process, from Python's imports to the saved model, timed by
phase (wall and CPU seconds): import, model load, reading and tokenizing, the
first train step (kbert: tracing and graph optimisation), the later steps, the
evaluation after each epoch, saving, the curve PNG and TensorBoard logs. kbert runs
`kbert.finetune` as the CLI does, its phases timed by wrappers around the functions
it calls (nothing in it changes); the reference is `finetune_reference.py`'s
PyTorch loop (BertTokenizerFast, torch AdamW, an evaluation per epoch) plus
`save_pretrained`. Both start from the same weights and head (`finetune_reference.
start_point`) on the same SST-2 rows. Runs alternate kbert, torch, kbert, torch...;
the table shows medians over `--rounds`. CPU seconds (all threads of the process)
move less than wall time when the machine is shared.

    python benchmarks/finetune_phases.py --train-rows 1000 --eval-rows 500 --rounds 2
    python benchmarks/finetune_phases.py --train-rows 4000 --epochs 2 --eval-rows 872 --threads 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import finetune_reference as reference


def child_env(threads):
    """The environment of a child process that uses `threads` threads (every runtime's knob)."""
    n = str(threads)
    return dict(os.environ, TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS=n, OMP_NUM_THREADS=n,
                RAYON_NUM_THREADS=n, TOKENIZERS_PARALLELISM="true" if threads > 1 else "false",
                TF_CPP_MIN_LOG_LEVEL="3", TRANSFORMERS_VERBOSITY="error", HF_HUB_DISABLE_PROGRESS_BARS="1",
                TQDM_DISABLE="1")



def run_tf(code, *args):
    """TensorFlow work in a child process (the parent stays free of TF's threads and memory)."""
    subprocess.run([sys.executable, "-c", "import sys\nfrom kbert.runtime import start_tensorflow\n"
                    "start_tensorflow()\n" + code, *args], check=True, cwd=os.path.dirname(HERE))



def prepare(work, args):
    """Data subsets and the shared start (kbert dir + HF dir), as finetune_reference does."""
    ns = argparse.Namespace(out=os.path.join(work, "finetune"), weights=None, data=args.data,
                            eval_size=args.eval_rows, train_size=args.train_rows, seq_len=args.seq_len,
                            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup=0.1, seed=42)
    os.makedirs(ns.out, exist_ok=True)
    settings = reference._settings("sst2", ns)
    paths = os.path.join(ns.out, "paths.json")
    if os.path.exists(paths):
        with open(paths) as f:
            saved = json.load(f)
        if saved["settings"] == settings:
            return saved
    run_tf("""
import argparse, json, sys
sys.path.insert(0, sys.argv[2])
import finetune_reference as reference
ns = argparse.Namespace(**json.loads(sys.argv[1]))
settings = reference._settings("sst2", ns)
minilm = reference._import_minilm(ns)
train, test, options = reference.prepare("sst2", settings, ns)
kbert_dir, hf_dir, labels = reference.start_point("sst2", minilm, train, options, settings, ns)
with open(sys.argv[3], "w") as f:
    json.dump({"settings": settings, "train": train, "eval": test, "kbert": kbert_dir, "hf": hf_dir,
               "labels": labels}, f)
""", json.dumps(vars(ns)), HERE, paths)
    with open(paths) as f:
        return json.load(f)


class Phases:
    """Wall and CPU seconds per named phase (CPU: this process, all threads)."""

    def __init__(self):
        self.wall, self.cpu, self.steps = {}, {}, []

    def add(self, name, wall, cpu):
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def timed(self, name, fn):
        def wrapper(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.add(name, time.perf_counter() - w, time.process_time() - c)
        return wrapper

    def step(self, wall, cpu):
        self.steps.append((wall, cpu))

    def result(self):
        out = {"wall_s": dict(self.wall), "cpu_s": dict(self.cpu)}
        for key, i in (("wall_s", 0), ("cpu_s", 1)):
            times = [s[i] for s in self.steps]
            out[key].update(first_step=times[0], later_steps=sum(times[1:]),
                            median_step=statistics.median(times[1:] or times))
        out["steps"] = len(self.steps)
        return out


def child(side, work, threads, out):
    """One whole run (this process: import, read, train, evaluate, save); writes phases to `out`."""
    begin_wall, begin_cpu = time.perf_counter(), time.process_time()
    phases = Phases()
    with open(os.path.join(work, "finetune", "paths.json")) as f:
        spec = json.load(f)
    settings = spec["settings"]
    target = os.path.join(work, "finetune", f"out_{side}")
    if side == "kbert":
        metric = _kbert_run(spec, settings, target, phases, begin_wall, begin_cpu)
    else:
        metric = _torch_run(spec, settings, target, phases, threads, begin_wall, begin_cpu)
    phases.add("total", time.perf_counter() - begin_wall, time.process_time() - begin_cpu)
    with open(out, "w") as f:
        json.dump({"side": side, "accuracy": metric, **phases.result()}, f, indent=1)


def _kbert_run(spec, settings, target, phases, begin_wall, begin_cpu):
    """`kbert.finetune` as the CLI runs it, its phases timed from outside (wrappers
    around the functions it calls; nothing in it changes)."""
    from kbert.runtime import start_tensorflow

    start_tensorflow()
    import keras

    from kbert import model_dir
    from kbert.tasks import base
    from kbert.tasks.classify import ClassifyTask
    from kbert.training import callbacks
    from kbert.training import finetune as module

    phases.add("import", time.perf_counter() - begin_wall, time.process_time() - begin_cpu)
    model_dir.load_model = phases.timed("load model", model_dir.load_model)
    ClassifyTask.read = phases.timed("read + tokenize", ClassifyTask.read)
    ClassifyTask.train_dataset = phases.timed("read + tokenize", ClassifyTask.train_dataset)
    base.predict_arrays = phases.timed("eval", base.predict_arrays)
    ClassifyTask.features = phases.timed("eval", ClassifyTask.features)
    model_dir.save_model = phases.timed("save", model_dir.save_model)
    module._save_curve = phases.timed("curve + logs", module._save_curve)
    callbacks.EpochEvaluator.restore_best = phases.timed("save", callbacks.EpochEvaluator.restore_best)
    for name in dir(keras.callbacks.TensorBoard):
        if name.startswith("on_"):
            setattr(keras.callbacks.TensorBoard, name,
                    phases.timed("curve + logs", getattr(keras.callbacks.TensorBoard, name)))

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.begin = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            phases.step(time.perf_counter() - self.begin[0], time.process_time() - self.begin[1])

    fit = keras.Model.fit

    def timed_fit(self, *a, callbacks=None, **k):
        return fit(self, *a, callbacks=[StepTimer(), *(callbacks or [])], **k)
    keras.Model.fit = timed_fit
    result = module.finetune(
        "classify", spec["kbert"], spec["train"], target, eval=spec["eval"], epochs=settings["epochs"],
        batch_size=settings["batch_size"], lr=settings["lr"], warmup=settings["warmup"],
        seq_len=settings["seq_len"], seed=settings["seed"], progress=False, overwrite=True)
    return result["metrics"]["history"][-1]["eval"]["accuracy"]


def _torch_run(spec, settings, target, phases, threads, begin_wall, begin_cpu):
    """finetune_reference.run_hf's loop (same functions), timed per phase, then save_pretrained."""
    import torch
    import transformers

    # transformers imports its classes on first use: counted here, as kbert's imports are.
    transformers.BertTokenizerFast, transformers.BertForSequenceClassification  # noqa: B018
    transformers.get_linear_schedule_with_warmup  # noqa: B018
    phases.add("import", time.perf_counter() - begin_wall, time.process_time() - begin_cpu)
    torch.manual_seed(settings["seed"])
    torch.set_num_threads(threads)
    tokenizer = phases.timed("load model", transformers.BertTokenizerFast.from_pretrained)(spec["hf"])
    model = phases.timed("load model", transformers.BertForSequenceClassification.from_pretrained)(spec["hf"])
    train, evaluate = phases.timed("read + tokenize", reference._hf_classify_data)(
        tokenizer, spec["train"], spec["eval"], {}, settings, spec["labels"])
    batch_size = settings["batch_size"]
    total = -(-len(train) // batch_size) * settings["epochs"]
    optimizer, schedule = reference.hf_optimizer(model, settings["lr"], round(settings["warmup"] * total), total)
    generator = torch.Generator().manual_seed(settings["seed"])
    for _ in range(settings["epochs"]):
        model.train()
        order = torch.randperm(len(train), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            w, c = time.perf_counter(), time.process_time()
            reference.hf_step(model, train.collate(order[start:start + batch_size]), optimizer, schedule)
            phases.step(time.perf_counter() - w, time.process_time() - c)
        model.eval()
        with torch.no_grad():
            metrics = phases.timed("eval", evaluate)(model)

    def save():
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    phases.timed("save", save)()
    return metrics["accuracy"]


def run(work, args):
    """`args.finetune_rounds` pairs of whole runs, kbert then torch, each in a fresh process."""
    sides = getattr(args, "sides", ("kbert", "torch"))
    results = {side: [] for side in sides}
    for i in range(args.finetune_rounds):
        for side in sides:
            out = os.path.join(work, "finetune", f"phases_{side}_{i}.json")
            begin = time.perf_counter()
            subprocess.run([sys.executable, os.path.abspath(__file__), "--child", side, "--work", work,
                            "--threads", str(args.threads), "--json", out], check=True, env=child_env(args.threads))
            with open(out) as f:
                row = json.load(f)
            row["process_wall_s"] = time.perf_counter() - begin
            results[side].append(row)
            print(f"  finetune {side} round {i + 1}: {row['process_wall_s']:.1f} s wall, "
                  f"{row['cpu_s']['total']:.1f} s CPU, accuracy {row['accuracy']:.4f}", flush=True)
    return results


NAMES = {"kbert": "kbert", "torch": "HF torch"}
PHASES = ("import", "load model", "read + tokenize", "first_step", "later_steps", "eval", "save", "curve + logs")


def phase_table(runs):
    """Markdown table of `run`'s result: medians over rounds, seconds wall / CPU."""
    def cell(side, key, name):
        values = []
        for r in runs[side]:
            phases = r[key]
            values.append(phases["total"] - sum(phases.get(n, 0.0) for n in PHASES) if name == "other"
                          else phases.get(name, 0.0))
        return statistics.median(values)

    sides = [side for side in ("kbert", "torch") if runs.get(side)]
    lines = ["| phase (s wall / CPU) | " + " | ".join(NAMES[side] for side in sides) + " |",
             "| --- |" + " --- |" * len(sides)]
    for name in (*PHASES, "other", "total"):
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(
            f"{cell(side, 'wall_s', name):.1f} / {cell(side, 'cpu_s', name):.1f}" for side in sides) + " |")
    median = {s: statistics.median(r["cpu_s"]["median_step"] for r in runs[s]) for s in sides}
    wall = {s: statistics.median(r["process_wall_s"] for r in runs[s]) for s in sides}
    accuracy = {s: ", ".join(f"{r['accuracy']:.4f}" for r in runs[s]) for s in sides}
    lines += ["| median later step, CPU | " + " | ".join(f"{median[s]:.2f}" for s in sides) + " |",
              "| process wall time (start to exit) | " + " | ".join(f"{wall[s]:.1f}" for s in sides) + " |",
              "| dev accuracy | " + " | ".join(accuracy[s] for s in sides) + " |"]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=1, help="kbert, torch pairs of whole runs.")
    parser.add_argument("--sides", default="kbert,torch", help="Which runs each round has (kbert, torch).")
    parser.add_argument("--json", help="Write the figures here.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.work, args.threads, args.json)
    args.finetune_rounds = args.rounds
    args.sides = [side for side in args.sides.split(",") if side]
    if not args.sides or set(args.sides) - set(NAMES):
        parser.error(f"--sides: expected names among {sorted(NAMES)}")
    setup = prepare(args.work, args)
    runs = run(args.work, args)
    print(f"{args.train_rows:,} SST-2 rows x {args.epochs} epoch(s), seq {args.seq_len}, batch {args.batch_size}, "
          f"eval {args.eval_rows} rows, {args.threads} thread(s); load average {os.getloadavg()}\n")
    print(phase_table(runs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": setup["settings"], "threads": args.threads, "runs": runs}, f, indent=1)


def add_arguments(parser):
    """The options of a whole run (side_by_side.py takes them too)."""
    parser.add_argument("--work", default="/tmp/kbert_side_by_side", help="Data subsets and start points (reused).")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-rows", type=int, default=1000, help="Random SST-2 training rows (seed 0).")
    parser.add_argument("--eval-rows", type=int, default=500, help="First SST-2 dev rows.")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)


if __name__ == "__main__":
    sys.exit(main())
