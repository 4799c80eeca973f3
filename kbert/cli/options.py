"""Option defaults of the `kbert` commands, read from the Python API.

A default lives once, in the API function's signature (or the dataclass it
takes); the commands read it from there instead of repeating the number, so
`kbert pretrain` and `kbert.pretrain()` cannot drift apart.
"""

import importlib
import inspect


def api_default(target, name):
    """The default of parameter `name` of `target` (a function or a class).

    Args:
        target: the API function or class (a dataclass's fields are its
            parameters), or `"module:qualname"` to import it on first use.
        name: the parameter.

    Examples:
    ```python
    api_default(kbert.training.pretrain.pretrain, "steps")   # 1000
    api_default(kbert.BertConfig, "vocab_size")              # 30522
    ```
    """
    target = _resolve(target)
    parameter = inspect.signature(target).parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise TypeError(f"{getattr(target, '__qualname__', target)} has no parameter {name!r} with a default")
    return parameter.default


class LazyDefault:
    """An API default read when click first needs it.

    For API modules that import TensorFlow (`kbert.data.pretraining`), so that
    importing the CLI and `kbert --help` stay fast. click calls it for the
    value and shows `str()` of it in `--help`.
    """

    def __init__(self, target, name):
        self.target, self.name = target, name

    def __call__(self):
        return api_default(self.target, self.name)

    def __str__(self):
        return str(self())

    def __repr__(self):
        return f"LazyDefault({self.target!r}, {self.name!r})"


def _resolve(target):
    if not isinstance(target, str):
        return target
    module, _, qualname = target.partition(":")
    value = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value
