"""Lazy public names for kbert's packages: `import kbert` (and `kbert --help`)
stay free of TensorFlow until a name that needs it is used."""

import importlib
import sys


def lazy_getattr(package, exports):
    """A module-level `__getattr__` for `package` that imports `exports[name]`
    (a module path) on first use and caches the name in the package.

    Args:
        package: the package's `__name__`.
        exports: public name -> module that defines it.
    """

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
