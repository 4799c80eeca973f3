"""The model directory: the one contract between kbert's stages.

```
<dir>/config.json   {"kbert_version", "task", "bert": BertConfig, "labels", "seq_len", "lowercase"}
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

from kbert.config import BertConfig
from kbert.errors import ConfigError, DataError
from kbert.io import atomic_dir, read_json, write_json
from kbert.version import __version__

TASKS = ("encoder", "pretrain", "classify", "ner", "qa")
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
    """

    path: str
    config: BertConfig
    task: str
    labels: list
    seq_len: int
    lowercase: bool
    metrics: dict
    vocab: list = dataclasses.field(repr=False, default_factory=list)

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


def _label_count(model, task):
    if task == "classify":
        return model.num_classes
    if task == "ner":
        return model.num_labels
    return None


def save_model(
    model,
    path,
    *,
    vocab,
    lowercase=True,
    labels=None,
    seq_len=128,
    metrics=None,
):
    """Write `model` and what it needs to be used again as a model directory.

    Args:
        model: a kbert model (`BertEncoder`, `BertPretrainer`, `BertClassifier`,
            `BertTagger` or `BertQuestionAnswerer`).
        path: the directory; replaced atomically if it exists.
        vocab: list of tokens, or a path to a vocab.txt to copy.
        lowercase: whether the tokenizer lowercases and strips accents.
        labels: label names in id order (classify and ner models). A regression
            classifier (one output) takes none.
        seq_len: sequence length used in training and export.
        metrics: dict written to metrics.json.

    Examples:
    ```python
    kbert.save_model(classifier, "runs/sst2", vocab="vocab.txt", labels=["neg", "pos"])
    ```
    """
    from kbert.models import task_of
    from kbert.tokenization.vocab import load_vocab

    task = task_of(model)
    encoder = model if task == "encoder" else model.encoder
    config = encoder.config
    tokens = load_vocab(vocab) if isinstance(vocab, (str, os.PathLike)) else list(vocab)
    if len(tokens) != config.vocab_size:
        raise ConfigError(
            f"vocab: {len(tokens)} tokens but the model's vocab_size is {config.vocab_size}"
        )
    labels = [str(label) for label in (labels or [])]
    expected = _label_count(model, task)
    if expected is not None and not (task == "classify" and expected == 1 and not labels):
        if len(labels) != expected:
            raise ConfigError(f"labels: {len(labels)} names given but the model has {expected} outputs")
    if not 2 <= int(seq_len) <= config.max_position_embeddings:
        raise ConfigError(
            f"seq_len: {seq_len} is outside 2..{config.max_position_embeddings} "
            "(max_position_embeddings)"
        )
    manifest = {
        "kbert_version": __version__,
        "task": task,
        "bert": config.to_dict(),
        "labels": labels,
        "seq_len": int(seq_len),
        "lowercase": bool(lowercase),
    }
    with atomic_dir(path) as tmp:
        write_json(os.path.join(tmp, CONFIG_FILE), manifest)
        with open(os.path.join(tmp, VOCAB_FILE), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in tokens))
        model.save(os.path.join(tmp, MODEL_FILE))
        write_json(os.path.join(tmp, METRICS_FILE), metrics or {})
    return read_model_dir(path)


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
    manifest = read_json(source)
    if not isinstance(manifest, dict):
        raise DataError(f"{source}: expected a JSON object")
    task = _field(manifest, "task", str, source)
    if task not in TASKS:
        raise DataError(f"{source}: field 'task' is {task!r}, expected one of {list(TASKS)}")
    config = BertConfig.from_dict(_field(manifest, "bert", dict, source), source=f"{source}: bert")
    labels = _field(manifest, "labels", list, source)
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
    return ModelDir(path, config, task, labels, seq_len, lowercase, metrics, vocab)


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
    from kbert.models import task_of

    try:
        task = task_of(model)
    except TypeError:
        raise DataError(f"{info.model_path}: not a kbert model ({type(model).__name__})") from None
    encoder = model if task == "encoder" else model.encoder
    if task != info.task or encoder.config != info.config:
        raise ConfigError(
            f"{info.model_path}: holds a {task} model whose architecture differs from "
            f"{os.path.join(info.path, CONFIG_FILE)} (task {info.task})"
        )
    return model

