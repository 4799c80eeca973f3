"""User-facing errors.

A `KbertError` is bad input the user can fix (a missing file, a config field out of
range, a vocab without `[MASK]`). The CLI prints its message as one line and exits
with code 2; Python callers catch it like any `ValueError`.
"""


class KbertError(ValueError):
    """Bad user input; the message names the file and line or the field."""


class ConfigError(KbertError):
    """An invalid or inconsistent model configuration."""


class DataError(KbertError):
    """An unreadable or malformed input file."""


class OutputError(KbertError):
    """An output kbert must not or cannot write: a directory that is not kbert's
    (without `--overwrite`), one that holds an input of the run, a path another
    run is writing, a read-only or full filesystem."""
