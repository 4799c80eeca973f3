"""Benchmark of vocabulary learning: `kbert.learn_vocab` against Hugging Face's trainer.

For each corpus and vocabulary size, kbert's learner and HF `tokenizers`'
`BertWordPieceTokenizer.train` (its defaults for BERT uncased: min_frequency 2,
limit_alphabet 1000) run interleaved, A B A B ..., each in its own subprocess;
the time is that of the learning call alone (imports excluded), the median over
`--rounds`. Printed per run: median seconds of each, the ratio kbert / HF
(goal <= 1.5), the vocabulary size reached, each child's RSS before learning and
its peak while learning (Linux VmHWM, reset after the imports), and how often
kbert's in-graph `BertTokenizer` gives the same ids as `transformers`'
`BertTokenizerFast` on each learned vocabulary (up to `--lines` random
non-blank lines of the corpus, the same lines for both).

Usage:

    python benchmarks/vocab_learning.py                  # sample.txt, then the full corpus
    python benchmarks/vocab_learning.py --only sample --rounds 1
    python benchmarks/vocab_learning.py --corpus a.txt b.txt --sizes 8000 --json out.json
"""

import argparse
import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "data", "corpus")


def default_runs():
    """(name, files, sizes): sample.txt at 8000, all corpus .txt files at 8000 and 30522."""
    full = sorted(f for f in glob.glob(os.path.join(CORPUS, "*.txt")) if "LICENSE" not in os.path.basename(f))
    return [
        ("sample", [os.path.join(CORPUS, "sample.txt")], [8000]),
        ("full", full, [8000, 30522]),
    ]


# --- children ------------------------------------------------------------------------


def _memory_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    return float("nan")


def _reset_peak_rss():
    # Linux: writing 5 to clear_refs resets VmHWM, so the peak measured after
    # it is the learner's own, not TensorFlow's import.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def child(args):
    """Learn one vocabulary; print a JSON line with the seconds it took and its size."""
    if args.child == "kbert":
        sys.path.insert(0, REPO)
        from kbert.tokenization import learn_vocab

        _reset_peak_rss()
        before = _memory_mib("VmRSS")
        start = time.perf_counter()
        vocab = learn_vocab(args.files, args.size, out=args.out, progress=False)
        seconds = time.perf_counter() - start
        size = len(vocab)
    else:
        from tokenizers import BertWordPieceTokenizer

        _reset_peak_rss()
        before = _memory_mib("VmRSS")
        start = time.perf_counter()
        tokenizer = BertWordPieceTokenizer(lowercase=True)
        tokenizer.train(args.files, vocab_size=args.size, show_progress=False)
        seconds = time.perf_counter() - start
        size = tokenizer.get_vocab_size()
        directory = tempfile.mkdtemp()
        tokenizer.save_model(directory)
        shutil.move(os.path.join(directory, "vocab.txt"), args.out)
        os.rmdir(directory)
    print(json.dumps({"seconds": seconds, "size": size, "rss_before_mib": before,
                      "peak_rss_mib": _memory_mib("VmHWM")}))


def run_child(learner, files, size, out):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", learner,
           "--size", str(size), "--out", out, "--corpus", *files]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{learner} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- id agreement ---------------------------------------------------------------------


def sample_lines(files, n, seed=0):
    """Up to n random non-blank lines (reservoir sampling: memory flat in corpus size)."""
    rng = random.Random(seed)
    kept, seen = [], 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                seen += 1
                if len(kept) < n:
                    kept.append(line)
                else:
                    j = rng.randrange(seen)
                    if j < n:
                        kept[j] = line
    return kept


def id_agreement(vocab_path, lines):
    """Share of lines where kbert's BertTokenizer and HF's BertTokenizerFast give the same ids."""
    sys.path.insert(0, REPO)
    import transformers

    from kbert.tokenization import BertTokenizer

    ours = BertTokenizer(vocab_path, lowercase=True).tokenize(lines).to_list()
    # from_pretrained on a folder holding vocab.txt: transformers 5 ignores a
    # `vocab_file=` argument to the constructor.
    with tempfile.TemporaryDirectory() as directory:
        shutil.copy(vocab_path, os.path.join(directory, "vocab.txt"))
        hf = transformers.BertTokenizerFast.from_pretrained(directory, do_lower_case=True)
        theirs = hf(lines, add_special_tokens=False)["input_ids"]
    same = sum(a == b for a, b in zip(ours, theirs))
    return same, len(lines)


# --- main -------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", help="text files (default: the shared corpus runs)")
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--only", choices=["sample", "full"], help="one of the default runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=10000, help="lines for the id agreement")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", choices=["kbert", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.child:
        args.files = args.corpus
        return child(args)

    if args.corpus:
        runs = [("corpus", args.corpus, args.sizes or [8000])]
    else:
        runs = [r for r in default_runs() if args.only in (None, r[0])]
        if args.sizes:
            runs = [(name, files, args.sizes) for name, files, _ in runs]
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name, files, sizes in runs:
            mb = sum(os.path.getsize(f) for f in files) / 1e6
            lines = sample_lines(files, args.lines)
            for size in sizes:
                times = {"kbert": [], "hf": []}
                row = {"corpus": name, "files": files, "mb": round(mb, 2), "size": size,
                       "rounds": args.rounds}
                for _ in range(args.rounds):
                    for learner in ("kbert", "hf"):  # interleaved: A B A B ...
                        out = os.path.join(work, f"{learner}.txt")
                        r = run_child(learner, files, size, out)
                        times[learner].append(r["seconds"])
                        row[f"{learner}_size"] = r["size"]
                        for key in ("rss_before_mib", "peak_rss_mib"):
                            row[f"{learner}_{key}"] = max(
                                row.get(f"{learner}_{key}", 0), round(r[key])
                            )
                for learner in ("kbert", "hf"):
                    row[f"{learner}_s"] = round(statistics.median(times[learner]), 3)
                    row[f"{learner}_all_s"] = [round(t, 3) for t in times[learner]]
                    same, total = id_agreement(os.path.join(work, f"{learner}.txt"), lines)
                    row[f"{learner}_vocab_id_agreement"] = same / total
                    row["agreement_lines"] = total
                row["ratio"] = round(row["kbert_s"] / row["hf_s"], 2)
                results.append(row)
                print(
                    f"{name} ({mb:.1f} MB, {len(files)} files), size {size}, median of "
                    f"{args.rounds}: kbert {row['kbert_s']:.2f} s {row['kbert_all_s']}, "
                    f"HF {row['hf_s']:.2f} s {row['hf_all_s']}, ratio {row['ratio']:.2f}x; "
                    f"size reached kbert {row['kbert_size']}, HF {row['hf_size']}; "
                    f"RSS before / peak while learning: kbert {row['kbert_rss_before_mib']} / "
                    f"{row['kbert_peak_rss_mib']} MiB, HF {row['hf_rss_before_mib']} / "
                    f"{row['hf_peak_rss_mib']} MiB; "
                    f"BertTokenizer = BertTokenizerFast on {total} lines: kbert vocab "
                    f"{100 * row['kbert_vocab_id_agreement']:.2f}%, HF vocab "
                    f"{100 * row['hf_vocab_id_agreement']:.2f}%",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
