"""Peak memory (RSS of the process tree) of each phase of a `kbert export` run.

Runs `kbert export MODEL_DIR --out OUT ...` as a child process, samples the
resident memory of it and its children every 0.5 s from /proc (Linux), and
prints each line the export prints with the peak since the previous line: the
peak shown beside "ONNX dynamic ..." is that of the ONNX float32 phase before
it. Ends with the run's overall peak.

    python benchmarks/export_memory.py runs/sst2_minilm --out /tmp/mem_export --eval dev.tsv --eval-size 200
"""

import argparse
import os
import subprocess
import sys
import threading
import time


def tree_rss(root):
    """Resident bytes of process `root` and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--out", required=True)
    args, rest = parser.parse_known_args()  # the rest goes to `kbert export`
    rest = [a for a in rest if a != "--"]
    command = [sys.executable, "-m", "kbert.cli", "export", args.model_dir, "--out", args.out, *rest]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    peaks, start = {"run": 0, "line": 0}, time.time()

    def sample():
        while child.poll() is None:
            rss = tree_rss(child.pid)
            peaks["run"], peaks["line"] = max(peaks["run"], rss), max(peaks["line"], rss)
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    for line in child.stdout:
        if "it/s]" in line:  # progress bars
            continue
        print(f"[{time.time() - start:7.1f} s, peak {peaks['line'] / 1e9:5.2f} GB] {line.rstrip()}", flush=True)
        peaks["line"] = 0
    child.wait()
    print(f"exit {child.returncode}; peak RSS {peaks['run'] / 1e9:.2f} GB; {time.time() - start:.0f} s")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
