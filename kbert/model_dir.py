"""The model directory: the one contract between kbert's stages.

```
<dir>/config.json   {"kbert_version", "task", "bert": BertConfig, "labels", "seq_len", "lowercase",
                     "task_options" (optional)}
<dir>/vocab.txt     WordPiece vocab, one token a line (Google/HF format)
<dir>/model.keras   the Keras model (loads with safe_mode=True)
<dir>/metrics.json  what training/evaluation measured
```

`save_model` writes all of it into a temporary directory and renames it into place
only when complete; `read_model_dir`/`load_model` check every file and field and
fail with one message naming what is wrong.
"""

import dataclasses
import os

from kbert.config import BertConfig, check_seq_len
from kbert.errors import ConfigError, DataError
from kbert.io import has_control_characters, read_json, write_json
from kbert.outputs import output_dir, require_space
from kbert.version import __version__

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class ModelDir:
    """What a model directory holds, apart from the Keras model itself.

    Attributes:
        path: the directory.
        config: the encoder's `BertConfig`.
        task: one of `encoder`, `pretrain`, `classify`, `ner`, `qa`.
        labels: label names in id order (classify/ner), else an empty list.
        seq_len: sequence length the model was trained (and is exported) with.
        lowercase: whether the tokenizer lowercases and strips accents.
        metrics: the contents of metrics.json (empty if absent).
        vocab: the tokens of vocab.txt.
        task_options: the options the task was fine-tuned with that shape its
            predictions (`Task.saved_options`, e.g. QA's windows and answer
            rules); empty for older directories and models that are not
            fine-tuned, which then use the task's defaults.
    """

    path: str
    config: BertConfig
    task: str
    labels: list
    seq_len: int
    lowercase: bool
    metrics: dict
    vocab: list = dataclasses.field(repr=False, default_factory=list)
    task_options: dict = dataclasses.field(default_factory=dict)

    @property
    def vocab_path(self):
        return os.path.join(self.path, VOCAB_FILE)

    @property
    def model_path(self):
        return os.path.join(self.path, MODEL_FILE)

    def tokenizer(self):
        """A `kbert.BertTokenizer` for this model's vocab and casing."""
        from kbert.tokenization import BertTokenizer

        return BertTokenizer(self.vocab, lowercase=self.lowercase)


def save_model(
    model,
    path,
    *,
    vocab,
    lowercase=True,
    labels=None,
    seq_len=128,
    metrics=None,
    overwrite=False,
    inputs=(),
    task_options=None,
):
    """Write `model` and what it needs to be used again as a model directory.

    Args:
        model: a kbert model (`BertEncoder`, `BertPretrainer`, `BertClassifier`,
            `BertTagger` or `BertQuestionAnswerer`).
        path: the directory. An existing one is replaced (atomically) only if it
            is a kbert model directory, or with `overwrite=True`; never if it is
            or contains the current directory or an input (see `kbert.io`).
        vocab: list of tokens, or a path to a vocab.txt to copy.
        lowercase: whether the tokenizer lowercases and strips accents.
        labels: label names in id order (classify and ner models). A regression
            classifier (one output) takes none.
        seq_len: sequence length used in training and export.
        metrics: dict written to metrics.json.
        overwrite: replace an existing `path` that is not a kbert model directory.
        inputs: paths the caller read from, which `path` must not contain.
        task_options: the fine-tuning task's `Task.options()` (saved in
            config.json for prediction and export).

    Examples:
    ```python
    kbert.save_model(classifier, "runs/sst2", vocab="vocab.txt", labels=["neg", "pos"])
    ```
    """
    from kbert.tasks.registry import spec_of
    from kbert.tokenization.vocab import load_vocab

    row = spec_of(model)
    task = row.name
    config = row.encoder(model).config
    tokens = load_vocab(vocab) if isinstance(vocab, (str, os.PathLike)) else list(vocab)
    if len(tokens) != config.vocab_size:
        raise ConfigError(
            f"vocab: {len(tokens)} tokens but the model's vocab_size is {config.vocab_size}"
        )
    labels = [str(label) for label in (labels or [])]
    counts = row.label_counts(model)
    if counts is not None and len(labels) not in counts:
        raise ConfigError(f"labels: {len(labels)} names given but the model has {counts[-1]} outputs")
    seq_len = check_seq_len(seq_len, config)
    manifest = {
        "kbert_version": __version__,
        "task": task,
        "bert": config.to_dict(),
        "labels": labels,
        "seq_len": int(seq_len),
        "lowercase": bool(lowercase),
        "task_options": dict(task_options or {}),
    }
    with output_dir(path, "model_dir", inputs=inputs, overwrite=overwrite) as tmp:
        require_space(path, model.count_params() * 4)
        write_json(os.path.join(tmp, CONFIG_FILE), manifest)
        with open(os.path.join(tmp, VOCAB_FILE), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in tokens))
        _without_optimizer(model).save(os.path.join(tmp, MODEL_FILE))
        write_json(os.path.join(tmp, METRICS_FILE), metrics or {})
    return read_model_dir(path)


def _without_optimizer(model):
    """`model`, or for a compiled model an uncompiled copy with the same weights.

    Keras saves a compiled model's optimizer (slots, step counter, schedule) and
    compile config into the .keras file: two thirds of a fine-tuned model dir (182 of
    273 MB for MiniLM). A model dir is a deliverable, not a checkpoint: training that
    resumes keeps its optimizer state in its own checkpoint dir (`OUT.work`), and
    everything that trains a loaded model compiles it afresh.
    """
    if not getattr(model, "compiled", False):
        return model
    # from_config(get_config()) is what loading the file does; the copy holds
    # none of the training state (nor the distribution hooks bound to `model`).
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _field(manifest, name, kind, source):
    if name not in manifest:
        raise DataError(f"{source}: missing field {name!r}")
    value = manifest[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(f"{source}: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def read_model_dir(path):
    """Read and check a model directory's config, vocab and metrics (not the model).

    Raises `DataError`/`ConfigError` naming the file and field that is wrong.
    """
    from kbert.tokenization.vocab import load_vocab

    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DataError(f"{path}: model directory not found")
    source = os.path.join(path, CONFIG_FILE)
    if not os.path.exists(source) and os.path.isfile(os.path.join(path, "adapter.safetensors")):
        raise DataError(f"{path}: a LoRA adapter, not a model directory; make one with "
                        f"kbert apply-adapter BASE_DIR {path} --out DIR (kbert.apply_adapter)")
    manifest = read_json(source)
    if not isinstance(manifest, dict):
        raise DataError(f"{source}: expected a JSON object")
    from kbert.tasks.registry import NAMES

    task = _field(manifest, "task", str, source)
    if task not in NAMES:
        raise DataError(f"{source}: field 'task' is {task!r}, expected one of {list(NAMES)}")
    config = BertConfig.from_dict(_field(manifest, "bert", dict, source), source=f"{source}: bert")
    labels = _field(manifest, "labels", list, source)
    for index, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip() or has_control_characters(label):
            raise DataError(f"{source}: labels[{index}] is {label!r}: expected a name without line breaks "
                            "or control characters")
    seq_len = _field(manifest, "seq_len", int, source)
    lowercase = _field(manifest, "lowercase", bool, source)
    vocab = load_vocab(os.path.join(path, VOCAB_FILE))
    if len(vocab) != config.vocab_size:
        raise ConfigError(
            f"{os.path.join(path, VOCAB_FILE)}: {len(vocab)} tokens but {source} "
            f"has vocab_size {config.vocab_size}"
        )
    metrics_path = os.path.join(path, METRICS_FILE)
    metrics = read_json(metrics_path) if os.path.exists(metrics_path) else {}
    task_options = manifest.get("task_options", {})
    if not isinstance(task_options, dict):
        raise DataError(f"{source}: field 'task_options' has the wrong type ({type(task_options).__name__})")
    return ModelDir(path, config, task, labels, seq_len, lowercase, metrics, vocab, task_options)


def load_model(path, compile=False):
    """Load the Keras model of a model directory (with safe_mode=True).

    The model's architecture is checked against config.json, so a model.keras from
    another directory is caught.

    Examples:
    ```python
    model = kbert.load_model("runs/sst2")
    model.predict(features)
    ```
    """
    import keras

    import kbert.models  # noqa: F401  (registers the kbert classes for deserialization)

    info = read_model_dir(path)
    if not os.path.isfile(info.model_path):
        raise DataError(f"{info.model_path}: file not found")
    try:
        model = keras.saving.load_model(info.model_path, compile=compile, safe_mode=True)
    except Exception as e:  # Keras raises many types for a corrupt or foreign file
        raise DataError(f"{info.model_path}: cannot load Keras model ({type(e).__name__}: {e})") from None
    from kbert.tasks import registry

    try:
        row = registry.spec_of(model)
    except TypeError:
        raise DataError(f"{info.model_path}: not a kbert model ({type(model).__name__})") from None
    task = row.name
    if task != info.task or row.encoder(model).config != info.config:
        raise ConfigError(
            f"{info.model_path}: holds a {task} model whose architecture differs from "
            f"{os.path.join(info.path, CONFIG_FILE)} (task {info.task})"
        )
    # A label list of the wrong length maps outputs to the wrong names (or past the end).
    counts = row.label_counts(model)
    if counts is not None and len(info.labels) not in counts:
        raise ConfigError(
            f"{os.path.join(info.path, CONFIG_FILE)}: field 'labels' has {len(info.labels)} names but "
            f"{info.model_path} has {counts[-1]} outputs"
        )
    return model

