import errno
import os

import pytest

from kbert.errors import DataError, OutputError
from kbert.io import atomic_dir, atomic_file, iter_text_lines, read_json
from kbert.outputs import claim_output, output_dir, output_file, output_kind, writing


def test_iter_text_lines_reads_utf8_and_drops_bom(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffcafé\r\nline two\n".encode("utf-8"))
    assert list(iter_text_lines(path)) == [(1, "café"), (2, "line two")]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
        (b"good line\nbad \xff\xfe line\n", r"bad\.txt:2: not valid UTF-8"),
    ],
)
def test_bad_text_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        list(iter_text_lines(path))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="nope.txt: file not found"):
        list(iter_text_lines(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match="is a directory"):
        list(iter_text_lines(tmp_path))


def test_read_json_errors_name_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n"a": 1,\n"b": }\n')
    with pytest.raises(DataError, match=r"c\.json:3: invalid JSON"):
        read_json(path)


def test_atomic_file_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            open(tmp, "w").write("partial")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        open(os.path.join(tmp, "a"), "w").write("v1")
    assert (target / "a").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            open(os.path.join(tmp, "a"), "w").write("v2")
            raise RuntimeError("boom")
    assert (target / "a").read_text() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["model"]
    with atomic_dir(target) as tmp:
        open(os.path.join(tmp, "b"), "w").write("v3")
    assert sorted(os.listdir(target)) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_atomic_outputs_get_normal_permissions(tmp_path):
    with atomic_dir(tmp_path / "d") as tmp:
        pass
    with atomic_file(tmp_path / "f") as tmp:
        open(tmp, "w").write("x")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(tmp_path / "d").st_mode & 0o777 == 0o777 & ~mask
    assert os.stat(tmp_path / "f").st_mode & 0o777 == 0o666 & ~mask


def _write_model_dir(path, **options):
    with output_dir(path, "model_dir", **options) as tmp:
        for name in ("config.json", "vocab.txt", "model.keras"):
            open(os.path.join(tmp, name), "w").write(name)


def test_output_dir_replaces_only_its_own_kind(tmp_path):
    target = tmp_path / "out"
    _write_model_dir(target)
    assert output_kind(target) == "model_dir" and (target / ".kbert.json").exists()
    _write_model_dir(target)  # its own kind: replaced
    with pytest.raises(OutputError, match=r"out: is a kbert model directory, not an export; use --overwrite"):
        with output_dir(target, "export") as tmp:
            pass
    assert output_kind(target) == "model_dir"
    with pytest.raises(OutputError, match="will not replace it: it is a filesystem root"):
        _write_model_dir("/", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_output_file_replaces_a_learned_vocab_only(tmp_path):
    target = tmp_path / "vocab.txt"
    target.write_text("[unused0]\n[PAD]\n")  # not one kbert learned
    with pytest.raises(OutputError, match="vocab.txt: exists and is not a vocabulary file kbert wrote"):
        with output_file(target, "vocab") as tmp:
            pass
    with output_file(target, "vocab", overwrite=True) as tmp:
        open(tmp, "w").write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n")
    with output_file(target, "vocab") as tmp:  # now it is one
        open(tmp, "w").write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n")
    assert target.read_text().endswith("\na\n")
    assert sorted(os.listdir(tmp_path)) == [".vocab.txt.kbert.json", "vocab.txt"]


def test_output_file_keeps_a_user_file_that_looks_like_its_own(tmp_path):
    import numpy as np

    # A user's own float32 matrix or learned vocab has kbert's format but no record: refused.
    vectors, vocab = tmp_path / "mine.npy", tmp_path / "vocab.txt"
    np.save(vectors, np.ones((3, 4), np.float32))
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nmine\n")
    for target, kind in ((vectors, "vectors"), (vocab, "vocab")):
        before = target.read_bytes()
        with pytest.raises(OutputError, match="use --overwrite to replace it"):
            with output_file(target, kind) as tmp:
                pass
        assert target.read_bytes() == before
    # kbert's own file is replaced, but not once the user has changed it.
    with output_file(vectors, "vectors", overwrite=True) as tmp:
        np.save(open(tmp, "wb"), np.zeros((2, 4), np.float32))
    with output_file(vectors, "vectors") as tmp:
        np.save(open(tmp, "wb"), np.zeros((5, 4), np.float32))
    np.save(vectors, np.full((5, 4), 7, np.float32))  # same size, other content
    with pytest.raises(OutputError, match="mine.npy: exists and is not a vector file kbert wrote"):
        with output_file(vectors, "vectors") as tmp:
            pass
    assert np.load(vectors)[0, 0] == 7
    assert not [e for e in os.listdir(tmp_path) if e.startswith(".tmp-")]


def test_a_claim_is_reused_inside_the_same_run(tmp_path):
    target = tmp_path / "out"
    with claim_output(target, "model_dir", inputs=[tmp_path / "data.tsv"]):
        assert (tmp_path / ".out.lock").exists()
        _write_model_dir(target)  # the final write of the run that holds the lock
    assert not (tmp_path / ".out.lock").exists() and output_kind(target) == "model_dir"


def test_writing_turns_user_os_errors_into_one_line():
    with pytest.raises(OutputError, match=r"^runs/x: cannot write: No space left on device$"):
        with writing("runs/x"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(FileNotFoundError):  # not the user's: left as it is
        with writing("runs/x"):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
