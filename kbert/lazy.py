"""Lazy public names for kbert's packages: `import kbert` (and `kbert --help`)
stay free of TensorFlow until a name that needs it is used."""

import importlib
import sys


def lazy_getattr(package, exports, light=()):
    """A module-level `__getattr__` for `package` that imports `exports[name]`
    (a module path) on first use and caches the name in the package.

    A name that needs TensorFlow (every name not in `light`) first starts it
    as the CLI does (`kbert.runtime.start_tensorflow`): TF 2.21 prints its
    oneDNN, CUDA and absl notices at import and at the first graph run
    whatever `TF_CPP_MIN_LOG_LEVEL` says (measured), and Python API users
    should see kbert's output only, as CLI users do. `$KBERT_VERBOSE` keeps them.

    Args:
        package: the package's `__name__`.
        exports: public name -> module that defines it.
        light: names usable without TensorFlow (it is not imported for them).
    """

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if name not in light:
            from kbert.runtime import start_tensorflow

            start_tensorflow()
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
