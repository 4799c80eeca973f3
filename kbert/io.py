"""Checked reading of user files and all-or-nothing writing primitives.

Every reader here turns a missing, empty, binary or non-UTF-8 file into one
`DataError` naming the file (and line), so the CLI can print a single line.
`atomic_file` / `atomic_dir` build a file or directory beside its target and
rename it into place when complete; `kbert.outputs` puts the rules about what
may be replaced on top of them.
"""

import contextlib
import json
import os
import shutil
import tempfile
import unicodedata

from kbert.errors import DataError

_SNIFF_BYTES = 8192


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_text_file(path):
    """Raise `DataError` unless `path` is a non-empty, non-binary, readable file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a file")
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not head:
        raise DataError(f"{path}: file is empty")
    if b"\x00" in head:
        raise DataError(f"{path}: looks like a binary file (NUL bytes), expected UTF-8 text")
    return path


def iter_text_lines(path):
    """Yield `(line_number, line)` of a UTF-8 text file, without line endings.

    Decodes line by line so memory stays flat and an encoding error names its line.
    A UTF-8 byte-order mark at the start is dropped.
    """
    path = check_text_file(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{number}: not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})"
                ) from None
            if "\x00" in line:
                raise DataError(f"{path}:{number}: NUL byte in text")
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield number, line.rstrip("\r\n")


def read_json(path):
    """Parse a JSON file; errors name the file and line."""
    path = check_text_file(path)
    try:
        # utf-8-sig: a byte-order mark is accepted, as in every text reader here.
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def sha256_file(path):
    """Hex SHA-256 of a file's bytes, read in 1 MB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def has_control_characters(text):
    """True if `text` holds a line break, tab or other control character: a
    label like that cannot be one line of labels.txt (or of a TSV)."""
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def write_json(path, values):
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2, sort_keys=False)
            f.write("\n")


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path; on success it replaces `path`, on error it is removed."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path, overwrite=True):
    """Yield a temporary directory that becomes `path` when the block succeeds.

    The low-level step under `output_dir` (which adds the checks and the lock):
    an existing `path` is replaced only after the new one is complete
    (`overwrite=False` refuses to replace it). A symlinked `path` keeps its
    link; the directory it points to is replaced.
    """
    path = os.path.realpath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise DataError(f"{path}: exists and is not a directory")
    if os.path.isdir(path) and not overwrite:
        raise DataError(f"{path}: already exists")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = _temp_dir(path)
    try:
        yield tmp
        _swap_in(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _temp_dir(target):
    parent, name = os.path.split(target)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent)
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; give it a normal dir's mode
    return tmp


def _swap_in(tmp, target):
    """Rename `tmp` to `target`, moving an existing `target` aside first."""
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    parent, name = os.path.split(target)
    old = tempfile.mkdtemp(prefix=f".old-{name}-", dir=parent)
    os.rmdir(old)
    os.replace(target, old)
    os.replace(tmp, target)
    _remove(old)  # if this fails half-way, the next run removes the rest


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
