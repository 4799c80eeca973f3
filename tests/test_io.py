import os

import pytest

from kbert.errors import DataError
from kbert.io import atomic_dir, atomic_file, iter_text_lines, read_json


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
