"""LoRA fine-tuning with Keras 3's own low-rank adapters.

`kbert.finetune(..., lora_rank=R)` calls `enable_lora(R, lora_alpha=A)` (Keras'
`Dense`/`EinsumDense` method; kbert's encoder uses `Dense`) on the chosen
layers of every Transformer block and freezes every other encoder variable
(embeddings, LayerNorms, biases, the pooler, the other kernels): only the
`lora_kernel_a`/`lora_kernel_b` pairs and the task head train. The forward pass
is Keras': `x @ (W + alpha / rank * A @ B)`.

Saving, two ways:
- merged (the default): `merge_lora` folds `alpha / rank * A @ B` into each
  kernel and returns a plain model, so the model directory, export and every
  runtime see an ordinary BERT. (Keras 3.15's `model.save` of a LoRA layer
  also writes the merged kernel, and kbert's blocks do not serialize their
  sublayers' LoRA config, so a saved file reloads plain; `merge_lora` makes the
  in-memory model plain too, with the same arithmetic.)
- the adapter alone (`save_adapter=True`): `OUT/adapter.safetensors` holds the
  LoRA pairs and the head, keyed by Keras variable path, and in its header the
  task, labels, LoRA settings and the sha256 of the base encoder's weights.
  `apply_adapter(base, adapter, out)` (`kbert apply-adapter`) rebuilds the
  model on the same base model directory and writes the merged model dir; any
  other base is refused.

Defaults: `lora_alpha` = rank (scale 1.0, as keras-hub's `enable_lora(rank)`
and PEFT's `LoraConfig()`), and targets `all` (every Dense of each block and
the pooler, as PEFT's "all-linear"), not PEFT's BERT default `query`, `value`:
measured on kbert's default weights (all-MiniLM-L6-v2, SST-2, 94 steps, rank
8), query/value stayed at the majority class (50.9%) at every lr tried, and
+pooler reached 74.7, while `all` matched full fine-tuning (81.77 vs 81.77)
with 1.47% of the parameters trainable (benchmarks/README.md, "LoRA"). The
frozen pooler is the trap: sentence-transformers checkpoints never trained it,
so its output barely varies and starves a classifier. LoRA also wants a larger
learning rate than full fine-tuning (`kbert.finetune` uses 2e-3 with LoRA
unless given one).
"""

import dataclasses
import hashlib
import json
import numbers
import os

from kbert.errors import ConfigError, DataError, KbertError
from kbert.outputs import writes_output

# Target name -> attribute of `kbert.layers.TransformerBlock` (BERT's names:
# attention.self.query/key/value, attention.output.dense, intermediate.dense,
# output.dense). `pooler` is the encoder's pooler dense.
_BLOCK_LAYERS = {
    "query": "query",
    "key": "key",
    "value": "value",
    "attention_output": "attention_output",
    "intermediate": "intermediate",
    "output": "output_dense",
}
TARGETS = (*_BLOCK_LAYERS, "pooler")
TARGET_GROUPS = {
    "attention": ("query", "key", "value", "attention_output"),
    "ffn": ("intermediate", "output"),
    "all": TARGETS,
}
DEFAULT_TARGETS = TARGETS  # `all`: see the module docstring for why not query/value
ADAPTER_FILE = "adapter.safetensors"
METRICS_FILE = "metrics.json"
_FORMAT = "kbert-lora-adapter"
_FORMAT_VERSION = 1
_HEADER_KEY = "kbert_adapter"
_LORA_NAMES = ("lora_kernel_a", "lora_kernel_b")


@dataclasses.dataclass(frozen=True)
class LoraSettings:
    """What LoRA is put on and how strongly.

    Attributes:
        rank: rank of each `A @ B` update.
        alpha: scale numerator: the update is `alpha / rank * A @ B`.
        targets: target names (see `TARGETS`), in `TARGETS` order.
    """

    rank: int
    alpha: float
    targets: tuple

    def to_dict(self):
        return {"rank": self.rank, "alpha": self.alpha, "targets": list(self.targets)}


def lora_settings(rank, alpha=None, targets=DEFAULT_TARGETS):
    """Checked `LoraSettings`.

    Args:
        rank: a positive integer.
        alpha: positive number; default `rank` (scale 1.0, as Keras and PEFT).
        targets: names or groups (`attention`, `ffn`, `all`), as a list or a
            comma-separated string: `query`, `key`, `value`, `attention_output`,
            `intermediate`, `output` (the FFN output), `pooler`.

    Raises:
        ConfigError: a bad rank, alpha or target, named.

    Examples:
    ```python
    lora_settings(8, targets="query,value,ffn").targets
    # ('query', 'value', 'intermediate', 'output')
    ```
    """
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
        raise ConfigError(f"lora_rank: expected a positive integer, got {rank!r}")
    alpha = rank if alpha is None else alpha
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < float("inf"):
        raise ConfigError(f"lora_alpha: expected a positive number, got {alpha!r}")
    return LoraSettings(int(rank), float(alpha), parse_targets(targets))


def requested_lora(rank, alpha, targets, save_adapter=False):
    """`finetune`'s LoRA arguments checked: `LoraSettings`, or None without a
    rank (then LoRA options other than the defaults are a `KbertError`)."""
    if rank is not None:
        return lora_settings(rank, alpha, targets)
    given = [name for name, value in (("save_adapter", save_adapter), ("lora_alpha", alpha is not None),
                                      ("lora_targets", parse_targets(targets) != DEFAULT_TARGETS)) if value]
    if given:
        raise KbertError(f"{given[0]}: needs lora_rank (LoRA is off without it)")
    return None


def parse_targets(targets):
    """Target names (in `TARGETS` order) from names and groups."""
    if isinstance(targets, str):
        targets = targets.split(",")
    names = set()
    for name in (str(t).strip() for t in targets or ()):
        if name in TARGET_GROUPS:
            names.update(TARGET_GROUPS[name])
        elif name in TARGETS:
            names.add(name)
        elif name:
            raise ConfigError(f"lora_targets: unknown target {name!r} (choose from "
                              f"{', '.join(TARGETS)}, or the groups {', '.join(TARGET_GROUPS)})")
    if not names:
        raise ConfigError("lora_targets: no target layer given")
    return tuple(t for t in TARGETS if t in names)


def target_layers(encoder, targets):
    """The `Dense` layers of `encoder` that `targets` names, block by block."""
    layers = [getattr(block, _BLOCK_LAYERS[t]) for block in encoder.transformer_layers
              for t in targets if t in _BLOCK_LAYERS]
    if "pooler" in targets:
        layers.append(encoder.pooler.dense)
    return layers


def add_lora(model, encoder, settings):
    """Enable LoRA on the target layers of `encoder` and freeze the rest of it.

    After this, `model.trainable_variables` are the LoRA pairs and the
    variables outside the encoder (the task head).

    Args:
        model: the task model built on `encoder`.
        encoder: its `BertEncoder`.
        settings: `LoraSettings`.

    Returns:
        `parameter_counts(model)`.
    """
    layers = target_layers(encoder, settings.targets)
    for layer in layers:
        if getattr(layer, "lora_enabled", False):
            raise ConfigError(f"{layer.path}: LoRA is already enabled")
        layer.enable_lora(settings.rank, lora_alpha=settings.alpha)
    adapters = {id(v) for layer in layers for v in layer.weights if v.name in _LORA_NAMES}
    for variable in encoder.weights:
        if id(variable) not in adapters:
            variable.trainable = False
    return parameter_counts(model)


def parameter_counts(model):
    """`{"trainable", "total", "trainable_percent"}` of `model` (LoRA pairs
    included in the total, as PEFT's `print_trainable_parameters`)."""
    import numpy as np

    total = int(sum(np.prod(v.shape) for v in model.weights))
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return {"trainable": trainable, "total": total, "trainable_percent": round(100.0 * trainable / total, 4)}


def _lora_layers(model):
    return [layer for layer in model._flatten_layers() if getattr(layer, "lora_enabled", False)]


def merge_lora(model):
    """A plain copy of a LoRA model: each kernel is `W + alpha / rank * A @ B`.

    The copy has no LoRA variables and every variable trainable; its outputs
    equal the LoRA model's (Keras' LoRA `Dense` computes the same merged
    kernel in its forward pass). A model without LoRA is returned as is.

    Examples:
    ```python
    plain = merge_lora(model)
    plain.save("model.keras")
    ```
    """
    from keras import ops

    layers = _lora_layers(model)
    if not layers:
        return model
    values = {v.path: v for v in model.weights if v.name not in _LORA_NAMES}
    for layer in layers:
        kernel = next(v for v in layer.weights if v.name == "kernel")
        values[kernel.path] = ops.convert_to_numpy(layer.kernel)  # Keras' merge
    plain = type(model).from_config(model.get_config())
    if _lora_layers(plain):
        raise KbertError(f"{type(model).__name__}: its config re-enables LoRA; cannot make a plain copy")
    paths = [v.path for v in plain.weights]
    if len(set(paths)) != len(paths) or set(paths) != set(values):
        raise KbertError(f"{type(model).__name__}: variable paths differ between the LoRA model and its copy")
    for variable in plain.weights:
        variable.assign(values[variable.path])
    return plain


def weights_sha256(encoder):
    """sha256 of an encoder's weights (dtype, shape and bytes of each variable,
    in order): what an adapter's base is checked by. File names, timestamps
    and the model dir's other files do not enter it."""
    import numpy as np
    from keras import ops

    digest = hashlib.sha256()
    for variable in encoder.weights:
        value = np.ascontiguousarray(ops.convert_to_numpy(variable))
        digest.update(f"{value.dtype.str}{value.shape};".encode("ascii"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def trainable_weights(model):
    """`{variable path: array}` of `model`'s trainable variables: after
    `add_lora`, the LoRA pairs and the head."""
    from keras import ops

    weights = {v.path: ops.convert_to_numpy(v) for v in model.trainable_variables}
    if len(weights) != len(model.trainable_variables):
        raise KbertError(f"{type(model).__name__}: two trainable variables share a path")
    return weights


def adapter_metadata(task, labels, dropout, seq_len, settings, base_path, base_info, base_sha256, counts,
                     metrics=None):
    """The adapter header: what `load_adapter` rebuilds the model from."""
    from kbert.version import __version__

    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "kbert_version": __version__,
        "task": task.name,
        "labels": list(labels) if labels is not None else None,
        "dropout": dropout,
        "seq_len": int(seq_len),
        "task_options": task.options(),
        "lora": settings.to_dict(),
        "parameters": counts,
        "base": {"path": os.path.abspath(os.fspath(base_path)), "task": base_info.task,
                 "weights_sha256": base_sha256, "bert": base_info.config.to_dict()},
        "metrics": metrics or {},
    }


def write_adapter(directory, weights, metadata):
    """Write `adapter.safetensors` (weights + JSON header) and `metrics.json`
    into `directory` (a temporary directory of `kbert.outputs.output_dir`)."""
    from safetensors.numpy import save_file

    from kbert.io import write_json

    save_file(weights, os.path.join(directory, ADAPTER_FILE),
              metadata={_HEADER_KEY: json.dumps(metadata, sort_keys=True)})
    write_json(os.path.join(directory, METRICS_FILE), metadata.get("metrics") or {})


def adapter_file(path):
    """The adapter file of `path`: the file itself, or `path/adapter.safetensors`."""
    path = os.fspath(path)
    return os.path.join(path, ADAPTER_FILE) if os.path.isdir(path) else path


def read_adapter(path):
    """`(metadata, {variable path: array})` of an adapter file or directory.

    Raises:
        DataError: missing, not a safetensors file, or not a kbert adapter.
    """
    from safetensors import safe_open

    path = adapter_file(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: adapter file not found")
    try:
        with safe_open(path, framework="np") as f:
            header = (f.metadata() or {}).get(_HEADER_KEY)
            weights = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a corrupt file
        raise DataError(f"{path}: not a safetensors file ({type(e).__name__}: {e})") from None
    try:
        metadata = json.loads(header) if header else None
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT:
        raise DataError(f"{path}: not a kbert LoRA adapter (no {_HEADER_KEY!r} header)")
    if metadata.get("format_version") != _FORMAT_VERSION:
        raise DataError(f"{path}: adapter format version {metadata.get('format_version')!r}; "
                        f"this kbert reads version {_FORMAT_VERSION}")
    for field in ("task", "lora", "base", "seq_len", "task_options"):
        if field not in metadata:
            raise DataError(f"{path}: adapter header has no field {field!r}")
    return metadata, weights


def load_adapter(base, adapter):
    """The merged model of an adapter on its base model directory.

    Args:
        base: the model directory the adapter was fine-tuned from (`init`).
        adapter: the adapter directory (`finetune(..., save_adapter=True)`'s
            `out`) or its `adapter.safetensors`.

    Returns:
        dict with `model` (a plain Keras model, LoRA merged), `metadata` (the
        adapter header) and `base` (the base's `ModelDir`).

    Raises:
        ConfigError: `base` is not the model the adapter was trained on (its
            encoder weights' sha256 differs).

    Examples:
    ```python
    model = kbert.load_adapter("runs/minilm", "runs/sst2_lora")["model"]
    ```
    """
    from keras import ops

    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks.registry import get_task, spec

    metadata, weights = read_adapter(adapter)
    path = adapter_file(adapter)
    info = read_model_dir(base)
    base_model = load_model(base)
    encoder = spec(info.task).encoder(base_model)
    expected = metadata["base"].get("weights_sha256")
    found = weights_sha256(encoder)
    if found != expected:
        raise ConfigError(f"{path}: made for another base model (encoder weights sha256 {str(expected)[:12]}…, "
                          f"{info.path} has {found[:12]}…); apply it to the model dir it was trained from "
                          f"({metadata['base'].get('path')})")
    lora = metadata["lora"]
    settings = lora_settings(lora.get("rank"), lora.get("alpha"), lora.get("targets"))
    task = get_task(metadata["task"], **metadata["task_options"])
    labels = metadata.get("labels")
    task.configure(labels)
    model = task.build(encoder, labels, metadata.get("dropout"))
    add_lora(model, encoder, settings)
    variables = {v.path: v for v in model.trainable_variables}
    missing, extra = sorted(set(variables) - set(weights)), sorted(set(weights) - set(variables))
    if missing or extra:
        raise DataError(f"{path}: adapter weights do not fit the model "
                        f"({'missing ' + missing[0] if missing else 'unexpected ' + extra[0]})")
    for name, variable in variables.items():
        if tuple(weights[name].shape) != tuple(variable.shape):
            raise DataError(f"{path}: {name} has shape {tuple(weights[name].shape)}, "
                            f"the model's is {tuple(variable.shape)}")
        variable.assign(ops.convert_to_tensor(weights[name], dtype=variable.dtype))
    return {"model": merge_lora(model), "metadata": metadata, "base": info}


@writes_output("model_dir", inputs=("base", "adapter"))
def apply_adapter(base, adapter, out, overwrite=False):
    """Write the model directory of an adapter applied to its base model directory.

    The result is what `finetune(..., lora_rank=...)` without `save_adapter`
    writes: a plain model (LoRA merged) with the base's vocab and the
    adapter's task, labels, seq_len and training metrics.

    Args:
        base: the model directory the adapter was fine-tuned from.
        adapter: the adapter directory or its `adapter.safetensors`.
        out: model directory to write (atomically).
        overwrite: replace an existing `out` that is not a kbert model directory.

    Returns:
        The written `kbert.model_dir.ModelDir`.

    Examples:
    ```python
    kbert.apply_adapter("runs/minilm", "runs/sst2_lora", "runs/sst2")
    ```
    """
    from kbert.model_dir import save_model

    loaded = load_adapter(base, adapter)
    metadata, info = loaded["metadata"], loaded["base"]
    metrics = {**(metadata.get("metrics") or {}),
               "adapter": {"file": os.path.abspath(adapter_file(adapter)), "lora": metadata["lora"],
                           "base_weights_sha256": metadata["base"]["weights_sha256"]}}
    return save_model(loaded["model"], out, vocab=info.vocab, lowercase=info.lowercase,
                      labels=metadata.get("labels") or [], seq_len=metadata["seq_len"], metrics=metrics,
                      task_options=metadata["task_options"], overwrite=overwrite, inputs=(base, adapter))
