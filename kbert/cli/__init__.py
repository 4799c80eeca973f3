"""The `kbert` command line: one thin module of click commands per group over
the Python API (`app` holds the group and the error handling)."""

from kbert.cli.app import main

__all__ = ["main"]
