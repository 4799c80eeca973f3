import os
import subprocess
import sys

import pytest

from conftest import REPO
from kbert.data.pretraining import documents, held_out_split, read_documents, split_sentences
from kbert.errors import DataError, KbertError

from .helpers import write

NO_TENSORFLOW = """
import sys

import kbert.data.pretraining.documents
from kbert.data.pretraining import PretrainingConfig, read_documents, split_sentences
from kbert.data import split_sentences as exported

assert split_sentences("One. Two.") == exported("One. Two.") == ["One.", "Two."]
print(list(read_documents(sys.argv[1], split_sentences=True)))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_text"))
assert not loaded, loaded
"""


def test_sentence_splitter_and_reader_import_no_tensorflow(tmp_path):
    path = write(tmp_path / "p.txt", "One. Two!\n\nThree.\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, path], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[['One.', 'Two!'], ['Three.']]"


def test_split_sentences_rules():
    assert split_sentences("Mr. Smith arrived. He sat down! Then? 3 cats left.") == [
        "Mr. Smith arrived.", "He sat down!", "Then?", "3 cats left.",
    ]
    # Abbreviations, initials, acronyms and lowercase continuations do not split.
    assert split_sentences("J. R. R. Tolkien wrote it, e.g. The Hobbit. It sold.") == [
        "J. R. R. Tolkien wrote it, e.g. The Hobbit.", "It sold.",
    ]
    assert split_sentences("The U.S. Army left etc. and more. Fine.") == [
        "The U.S. Army left etc. and more.", "Fine.",
    ]
    assert split_sentences('He said "Go." "Now?" she asked.') == [
        'He said "Go."', '"Now?" she asked.',
    ]
    assert split_sentences("  ") == []


def test_read_documents_bert_format(tmp_path):
    a = write(tmp_path / "a.txt", "s1\ns2\n\n\n  \ns3\n")
    b = write(tmp_path / "b.txt", "t1\r\n\r\nt2\r\nt3")
    # A document ends at a blank line and at the end of every file; files are
    # read in turn, one document from each.
    assert list(read_documents([a, b])) == [["s1", "s2"], ["t1"], ["s3"], ["t2", "t3"]]
    # Globs expand sorted.
    assert list(read_documents(str(tmp_path / "*.txt"))) == list(read_documents([a, b]))


def test_files_are_interleaved_a_bounded_number_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "INTERLEAVE_FILES", 2)
    paths = [
        write(tmp_path / f"{name}.txt", "\n\n".join(f"{name}{i}" for i in range(n)) + "\n")
        for name, n in (("a", 3), ("b", 1), ("c", 2))
    ]
    order = [d[0] for d in read_documents(paths)]
    # c waits for a free slot; a short file frees its slot when it ends.
    assert order == ["a0", "b0", "a1", "c0", "a2", "c1"]


def test_read_documents_paragraph_mode(tmp_path):
    with_blanks = write(tmp_path / "p.txt", "One. Two!\nThree.\n\nFour? Five.\n")
    assert list(read_documents(with_blanks, split_sentences=True)) == [
        ["One.", "Two!", "Three."], ["Four?", "Five."],
    ]
    # No blank line at all: one document per line.
    per_line = write(tmp_path / "q.txt", "One. Two.\nThree. Four.\n")
    assert list(read_documents(per_line, split_sentences=True)) == [
        ["One.", "Two."], ["Three.", "Four."],
    ]


def test_long_documents_are_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_DOCUMENT_SENTENCES", 4)
    path = write(tmp_path / "long.txt", "\n".join(f"s{i}" for i in range(10)) + "\n")
    assert [len(d) for d in read_documents(path)] == [4, 4, 2]


def test_read_documents_errors_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match="nothing-here-\\*.txt: no file matches"):
        read_documents(str(tmp_path / "nothing-here-*.txt"))
    with pytest.raises(DataError, match="missing.txt: file not found"):
        read_documents(str(tmp_path / "missing.txt"))
    binary = write(tmp_path / "bin.txt", b"abc\x00def", "wb")
    with pytest.raises(DataError, match="bin.txt: looks like a binary file"):
        read_documents(binary)
    bad = write(tmp_path / "bad.txt", b"ok\nfine\n\xff\xfe broken\n", "wb")
    with pytest.raises(DataError, match="bad.txt:3: not valid UTF-8"):
        list(read_documents(bad))


def test_holdout_partitions_documents_stably(tmp_path):
    docs = [[f"document {i} sentence {j}." for j in range(2)] for i in range(3000)]
    path = write(tmp_path / "many.txt", "\n\n".join("\n".join(d) for d in docs))
    train = list(read_documents(path, holdout=0.1))
    heldout = list(read_documents(path, holdout=0.1, split="heldout"))
    assert len(train) + len(heldout) == 3000
    assert sorted(map(tuple, train + heldout)) == sorted(map(tuple, docs))
    assert 0.085 < len(heldout) / 3000 < 0.115
    # The split depends on the text only, not on position or file order.
    assert all(held_out_split(d, 0.1) == "heldout" for d in heldout)
    assert all(held_out_split(d, 0.1) == "train" for d in train)
    with pytest.raises(KbertError, match="holdout"):
        read_documents(path, holdout=1.0)
    with pytest.raises(KbertError, match="split"):
        read_documents(path, holdout=0.1, split="test")
