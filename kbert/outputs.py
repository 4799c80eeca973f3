"""Guarded outputs: what a kbert command may replace, and when.

Every output (model dir, export, TFRecords, HF dir, prepared data, vocab file)
is written through `output_dir` / `output_file`, under one rule: built beside
the target and renamed into place when complete; an existing target replaced
only if it is a kbert output of the same kind holding nothing else (the
`.kbert.json` marker, or for older outputs their known files; for a single
file, the `.NAME.kbert.json` record beside it whose SHA-256 still matches), else only with
`overwrite=True` (`--overwrite`); never a filesystem root or a directory that is
or contains the current directory, $HOME or an input of the run; one run at a
time per target (`flock` on `.NAME.lock` beside it, released by the kernel when
a process dies); leftovers of an interrupted run (`.tmp-NAME-*`, `.old-NAME-*`)
removed by the next run, which says so; an unwritable or full destination
reported before the long work (`writes_output`, `require_space`), and a
no-space or permission error while writing turned into one `OutputError`. A
symlinked target keeps its link: the directory it points to is replaced.
"""

import contextlib
import dataclasses
import errno
import fnmatch
import functools
import glob
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import threading

try:
    import fcntl
except ImportError:  # no flock (Windows): runs are not locked against each other there
    fcntl = None

from kbert.errors import OutputError
from kbert.io import _remove, _swap_in, _temp_dir, _umask, sha256_file


MARKER = ".kbert.json"


@dataclasses.dataclass(frozen=True)
class _Kind:
    title: str
    names: tuple  # patterns of the entries kbert writes into this kind of output
    identifying: tuple  # entries that mark an output written before the marker


KINDS = {
    "model_dir": _Kind("model directory",
                       ("config.json", "vocab.txt", "model.keras", "metrics.json", "logs", "training_curve.png"),
                       ("config.json", "vocab.txt", "model.keras")),
    "export": _Kind("export", ("serving", "tflite", "onnx", "vocab.txt", "labels.txt", "model_card.json",
                               "report.json", "report.md"), ("report.json",)),
    "pretrain_data": _Kind("pre-training data directory", ("pretrain_data.json", "pretrain-*-of-*.tfrecord"),
                           ("pretrain_data.json",)),
    "hf_export": _Kind("Hugging Face export",
                       ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                        "modules.json", "1_Pooling", "sentence_bert_config.json"),
                       ("config.json", "model.safetensors", "tokenizer_config.json")),
    "adapter": _Kind("LoRA adapter", ("adapter.safetensors", "metrics.json", "logs", "training_curve.png"),
                     ("adapter.safetensors",)),
    "vector_index": _Kind("vector index", ("vectors.npy", "corpus.txt", "lines.npy", "index.json"),
                          ("vectors.npy", "index.json")),
    "dataset": _Kind("prepared data set", ("train.tsv", "dev.tsv", "test.tsv", "SOURCE.json"),
                     ("SOURCE.json", "train.tsv")),
    # A working directory of nested outputs, written into rather than replaced.
    "quickstart": _Kind("quickstart directory", ("data", "encoder", "model", "exports", "export", "corpus",
                                                 "*.work", ".tmp-*", ".old-*", ".*.lock"), ("data",)),
}
FILE_KINDS = {"vocab": "vocabulary file", "vectors": "vector file"}
# errno values of a write the user can fix (space, permissions, read-only mount).
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
_SPACE_MARGIN = 1.2
_SMALL_FILES = 1_000_000  # configs, vocab, logs, plots: what a size estimate from the weights misses
_TEMP_CHARS = "[a-z0-9_]{8}"  # tempfile's random part


def output_kind(path):
    """The `KINDS` key of the kbert output directory at `path`, or None."""
    try:
        entries = os.listdir(path)
    except OSError:
        return None
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as f:
            marked = json.load(f).get("kind")
    except (OSError, ValueError, AttributeError):
        marked = None
    if marked in KINDS:
        return marked
    for kind, spec in KINDS.items():
        if all(name in entries for name in spec.identifying) and all(_known(e, spec) for e in entries):
            return kind
    return None


def _known(entry, spec):
    return entry == MARKER or any(fnmatch.fnmatchcase(entry, pattern) for pattern in spec.names)


def _sidecar(path):
    """The record beside a single-file output that says kbert wrote it."""
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}{MARKER}")


def _is_own_file(path, kind):
    """Whether kbert wrote the file at `path` as a `kind` output and nobody changed it since.

    A file carries no marker of its own (a user's vocab or float32 `.npy` looks
    just like kbert's), so `output_file` leaves a record beside it: its kind,
    size and SHA-256. Files without that record, or whose content no longer
    matches it, are the user's.
    """
    try:
        with open(_sidecar(path), encoding="utf-8") as f:
            record = json.load(f)
        return (record.get("kind") == kind and record.get("size") == os.path.getsize(path)
                and record.get("sha256") == sha256_file(path))
    except (OSError, ValueError, AttributeError):
        return False


def _contains(directory, path):
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _sample(names, n=3):
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _display(path):
    """`path` relative to the current directory when below it, else as it is."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _existing_ancestor(path):
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def input_paths(values):
    """Resolved paths of a run's inputs: paths, globs, lists of them; others skipped."""
    found = []
    for value in values:
        if isinstance(value, (list, tuple)):
            found += input_paths(value)
        elif isinstance(value, (str, os.PathLike)):
            value = os.fspath(value)
            matches = glob.glob(value) if glob.has_magic(value) else []
            found += [os.path.realpath(p) for p in matches or [value]]
    return found


class _Claim:
    """One run's hold on a target: checks, lock, leftovers, the final swap."""

    def __init__(self, path, kind, inputs, overwrite, work, into):
        self.shown = os.fspath(path)
        self.target = os.path.realpath(self.shown)
        self.parent, self.name = os.path.split(self.target)
        self.kind, self.inputs, self.overwrite = kind, list(inputs), bool(overwrite)
        self.is_file = kind in FILE_KINDS
        self.title = FILE_KINDS[kind] if self.is_file else KINDS[kind].title
        self.work = os.path.abspath(self.shown.rstrip("/\\")) + work if work else None
        self.into = into
        self.lock_fd = None

    def fail(self, message):
        raise OutputError(f"{self.shown}: {message}")

    def check_writable(self):
        ancestor = _existing_ancestor(self.parent)
        if not os.path.isdir(ancestor):
            self.fail(f"{ancestor} is not a directory")
        try:
            fd, probe = tempfile.mkstemp(prefix=".kbert-probe-", dir=ancestor)
            os.close(fd)
            os.remove(probe)
        except OSError as e:
            self.fail(f"cannot write in {ancestor} ({e.strerror})")

    def forbidden(self, path):
        """Why `path` must never be replaced (whatever `overwrite` says), or None."""
        if not os.path.lexists(path):
            return None
        if os.path.dirname(path) == path or os.path.ismount(path):
            return "is a filesystem root or mount point"
        protected = [("the current directory", os.path.realpath(os.curdir)),
                     ("your home directory", os.path.realpath(os.path.expanduser("~")))]
        protected += [(f"{_display(p)}, an input of this run", p) for p in self.inputs]
        for what, inside in protected:
            if _contains(path, inside):
                return f"is or contains {what}"
        return None

    def refusal(self):
        """Why the existing target may not be replaced without `overwrite`, or None."""
        path = self.target
        if not os.path.lexists(path):
            return None
        if self.is_file:
            if os.path.isdir(path):
                return "is a directory, expected a file"
            return None if _is_own_file(path, self.kind) else f"exists and is not a {self.title} kbert wrote"
        if not os.path.isdir(path):
            return "exists and is not a directory"
        entries = [e for e in os.listdir(path) if e != MARKER]
        if not entries:
            return None
        found = output_kind(path)
        if found is None:
            return f"holds other files ({_sample(entries)}), not a kbert {self.title}"
        if found != self.kind:
            return f"is a kbert {KINDS[found].title}, not {'an' if self.title[0] in 'aeiou' else 'a'} {self.title}"
        extra = [e for e in entries if not _known(e, KINDS[self.kind])]
        if extra:
            return f"holds other files ({_sample(extra)}) besides kbert's {self.title}"
        return None

    def check(self):
        reason = None if self.into else self.forbidden(self.target)
        if reason:
            self.fail(f"will not replace it: it {reason} (choose another output path)")
        if self.is_file and os.path.isdir(self.target):
            self.fail("is a directory, expected a file")
        reason = None if self.overwrite else self.refusal()
        if reason:
            self.fail(f"{reason}; use --overwrite to replace it")

    def acquire(self):
        if fcntl is None:
            return
        path = os.path.join(self.parent, f".{self.name}.lock")
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                self.fail(f"another kbert run (pid {holder}) is writing it; wait for it to end (lock {path})")
            try:  # the holder may have removed the file while releasing it: retry then
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.lock_fd, self.lock_path = fd, path
        with contextlib.suppress(OSError):  # the pid only names the holder; a full disk may refuse it
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))

    def release(self):
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.remove(self.lock_path)
            os.close(self.lock_fd)
            self.lock_fd = None

    def clean_leftovers(self):
        """Remove what an interrupted run of this target left (we hold its lock)."""
        name = re.escape(self.name)
        pattern = re.compile(rf"\.tmp-{_TEMP_CHARS}-(\.{name}{re.escape(MARKER)}|{name})$" if self.is_file
                             else rf"\.(tmp|old)-{name}-{_TEMP_CHARS}$")
        try:
            found = [e for e in os.listdir(self.parent) if pattern.match(e)]
        except OSError:
            found = []
        found = [os.path.join(self.parent, e) for e in found
                 if not any(_contains(os.path.join(self.parent, e), p) for p in self.inputs)]
        if self.work and os.path.isdir(self.work):
            reason = self.forbidden(self.work)
            if reason:
                raise OutputError(f"{self.work}: will not remove it: it {reason}")
            extra = [e for e in os.listdir(self.work) if e != "logs"]
            if extra and not self.overwrite:
                raise OutputError(f"{self.work}: holds other files ({_sample(extra)}), not kbert's scratch "
                                  "directory; use --overwrite to replace it")
            found.append(self.work)
        for path in found:
            _remove(path)
        if found:
            print(f"kbert: removed leftover {_sample([_display(p) for p in found])} of an interrupted run",
                  file=sys.stderr, flush=True)

    def remove_work(self):
        if self.work and os.path.isdir(self.work) and not self.forbidden(self.work):
            shutil.rmtree(self.work, ignore_errors=True)

    def commit(self, tmp):
        self.check()  # again: the target may have changed while the run worked
        if self.is_file:
            from kbert.version import __version__

            record = {"kind": self.kind, "size": os.path.getsize(tmp), "sha256": sha256_file(tmp),
                      "kbert_version": __version__}
            fd, record_tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(_sidecar(self.name)),
                                              dir=self.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(record, f)
                    f.write("\n")
                # File first: a crash between the renames leaves a record that
                # does not match, so the next run refuses rather than replaces.
                os.replace(tmp, self.target)
                os.replace(record_tmp, _sidecar(self.target))
            finally:
                if os.path.exists(record_tmp):
                    os.remove(record_tmp)
        else:
            _swap_in(tmp, self.target)


_CLAIMS = {}
_CLAIMS_LOCK = threading.Lock()


@contextlib.contextmanager
def claim_output(path, kind, inputs=(), overwrite=False, work=None, into=False):
    """Check and lock the output `path` of a run, for the whole run.

    Refuses (`OutputError`, one line) what `output_dir` would refuse, a target
    another run is writing, and an unwritable destination, before any long work;
    removes leftovers of an interrupted run of the same target. Inside the block,
    `output_dir`/`output_file` of the same path in this process reuse the claim.

    Args:
        path: the output directory or file.
        kind: a `KINDS` key (directories) or `FILE_KINDS` key (files).
        inputs: the run's input paths (or globs); never replaced.
        overwrite: replace an existing target kbert did not write.
        work: suffix of a scratch directory beside the target (finetune's
            `OUT.work`) removed as a leftover and when the run fails.
        into: the run writes into the directory instead of replacing it
            (`quickstart`); it is created with its marker.
    """
    claim = _Claim(path, kind, input_paths(inputs), overwrite, work, into)
    with _CLAIMS_LOCK:
        held = _CLAIMS.get(claim.target)
    if held is not None:  # an enclosing call of this process holds it
        held.inputs += claim.inputs
        held.overwrite = held.overwrite or claim.overwrite
        yield held
        return
    claim.check_writable()
    with writing(claim.shown):
        os.makedirs(claim.parent, exist_ok=True)
    claim.acquire()
    try:
        claim.check()
        with _CLAIMS_LOCK:
            _CLAIMS[claim.target] = claim
        claim.clean_leftovers()
        if into:
            with writing(claim.shown):
                os.makedirs(claim.target, exist_ok=True)
                write_marker(claim.target, kind)
        try:
            yield claim
        except BaseException:
            claim.remove_work()
            raise
    finally:
        with _CLAIMS_LOCK:
            _CLAIMS.pop(claim.target, None)
        claim.release()


def writes_output(kind, inputs=(), out="out", work=None, into=False, when=None):
    """Decorator: the function writes `kind` to its argument `out` (when not
    None), which is claimed (`claim_output`) for the whole call, with the
    function's `overwrite` argument.

    Args:
        inputs: names of the function's input-path arguments, or a callable
            of the bound arguments dict returning the paths.
        kind, work, into: as for `claim_output`.
        when: optional callable of the arguments dict; claim only if true.
    """

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
            if values.get(out) is None or (when is not None and not when(values)):
                return fn(*args, **kwargs)
            paths = inputs(values) if callable(inputs) else [values.get(name) for name in inputs]
            with claim_output(values[out], kind, paths, overwrite=bool(values.get("overwrite")), work=work,
                              into=into):
                return fn(*args, **kwargs)

        return run

    return decorate


@contextlib.contextmanager
def output_dir(path, kind, inputs=(), overwrite=False):
    """Yield a temporary directory that becomes the output `path` (a `KINDS`
    key's kind) when the block succeeds, under the rule of this module; the
    `.kbert.json` marker is written with the contents.

    Examples:
    ```python
    with output_dir("runs/x", "model_dir", inputs=["data/train.tsv"]) as tmp:
        write_json(os.path.join(tmp, "config.json"), config)
    ```
    """
    with claim_output(path, kind, inputs, overwrite) as claim:
        with writing(claim.shown):
            tmp = _temp_dir(claim.target)
        try:
            with writing(claim.shown):
                write_marker(tmp, claim.kind)
                yield tmp
                claim.commit(tmp)
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def output_file(path, kind, inputs=(), overwrite=False):
    """Yield a temporary file path that becomes the output file `path` when
    the block succeeds; the rule of `output_dir`, for one file."""
    with claim_output(path, kind, inputs, overwrite) as claim:
        with writing(claim.shown):
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + claim.name, dir=claim.parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_umask())
        try:
            with writing(claim.shown):
                yield tmp
                claim.commit(tmp)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def write_marker(directory, kind):
    from kbert.version import __version__

    with open(os.path.join(directory, MARKER), "w", encoding="utf-8") as f:
        json.dump({"kind": kind, "kbert_version": __version__}, f)
        f.write("\n")


def require_space(path, nbytes):
    """Raise `OutputError` unless the filesystem of `path` has room for `nbytes`.

    Call it with an estimate of the output's size (e.g. 4 bytes per weight)
    before the long work; 20% and 1 MB for the small files are added.
    """
    if not nbytes:
        return
    nbytes = int(nbytes * _SPACE_MARGIN) + _SMALL_FILES
    ancestor = _existing_ancestor(os.path.dirname(os.path.realpath(os.fspath(path))))
    free = shutil.disk_usage(ancestor).free
    if free < nbytes:
        raise OutputError(f"{os.fspath(path)}: needs about {_megabytes(nbytes)} but only "
                          f"{_megabytes(free)} is free on the filesystem of {ancestor}")


def _megabytes(n):
    if n < 1e6:
        return f"{n / 1e3:.0f} kB"
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.1f} GB"


_TF_REASONS = ("No space left on device", "Disk quota exceeded", "Read-only file system", "Permission denied")


def error_reason(error):
    """The reason ("No space left on device"...) of a write failure the user can
    fix, from an `OSError` or TensorFlow's error for a file it writes; else None."""
    if isinstance(error, OSError):
        return error.strerror if error.errno in USER_ERRNOS else None
    errors = getattr(sys.modules.get("tensorflow"), "errors", None)
    if errors is not None and isinstance(error, errors.OpError):
        return next((reason for reason in _TF_REASONS if reason in str(error)), None)
    return None


def is_user_os_error(error):
    """True for a write failure the user can fix: no space, no permission, read-only."""
    return error_reason(error) is not None


@contextlib.contextmanager
def writing(path):
    """Turn a no-space / permission / read-only `OSError` into one `OutputError` naming `path`."""
    try:
        yield
    except Exception as e:
        if not is_user_os_error(e):
            raise
        name = getattr(e, "filename", None)
        where = f" ({name})" if name and os.fspath(name) != os.fspath(path) else ""
        raise OutputError(f"{os.fspath(path)}: cannot write: {error_reason(e)}{where}") from None
