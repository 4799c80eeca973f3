"""`from_pretrained`: a kbert model or preprocessor from a model directory or Hugging Face.

A source is either a kbert model directory (any task: `kbert import`, `kbert
pretrain`, `kbert finetune`, `kbert.save_model`) or a Hugging Face BERT directory
or hub id, which goes through the checkpoint importer (`kbert.checkpoints.load_hf`)
without writing anything. The model classes' `from_pretrained` classmethods and
`BertPreprocessor.from_pretrained` call the functions here.
"""

import dataclasses
import inspect
import os

from kbert.config import DEFAULT_SEQ_LEN
from kbert.errors import ConfigError, DataError

# Arguments of a task model's get_config that do not describe its head.
_NOT_HEAD = ("encoder", "name", "trainable")


@dataclasses.dataclass
class Source:
    """What a pre-trained source provides besides the model.

    Attributes:
        path: the kbert model directory, or the local Hugging Face directory.
        kind: "kbert" or "hf".
        vocab: the tokens, in id order.
        lowercase: whether the tokenizer lowercases and strips accents.
        seq_len: the model dir's seq_len; for Hugging Face, 128 or the model's
            `max_position_embeddings` if smaller (as `kbert import` records).
    """

    path: str
    kind: str
    vocab: list
    lowercase: bool
    seq_len: int


def _kind(path):
    """"kbert" for a kbert model directory, else "hf" (a HF directory or hub id)."""
    from kbert.io import read_json
    from kbert.model_dir import CONFIG_FILE, MODEL_FILE

    if not os.path.isdir(path):
        return "hf"  # a hub id; load_hf says what is wrong with anything else
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
        return "kbert"
    config_path = os.path.join(path, CONFIG_FILE)
    if os.path.isfile(config_path):
        config = read_json(config_path)
        if isinstance(config, dict) and "bert" in config and "task" in config:
            return "kbert"  # load_model then names the missing model.keras
    if any(os.path.isfile(os.path.join(path, f)) for f in ("model.safetensors", "pytorch_model.bin")):
        return "hf"
    raise DataError(
        f"{path}: neither a kbert model directory (config.json + model.keras) nor a "
        "Hugging Face BERT directory (config.json + model.safetensors or pytorch_model.bin)"
    )


def read_source(path):
    """The vocab, casing and seq_len of a pre-trained source (no weights read).

    Args:
        path: a kbert model directory, a Hugging Face BERT directory or a hub id.

    Returns:
        A `Source`.
    """
    path = os.fspath(path)
    if _kind(path) == "kbert":
        from kbert.model_dir import read_model_dir

        info = read_model_dir(path)
        return Source(info.path, "kbert", info.vocab, info.lowercase, info.seq_len)
    from kbert.checkpoints.hf import _hf_lowercase, _resolve_hf_dir
    from kbert.config import BertConfig
    from kbert.io import read_json
    from kbert.tokenization.vocab import load_vocab

    directory = _resolve_hf_dir(path)
    config_path = os.path.join(directory, "config.json")
    hf_config = read_json(config_path)
    if not isinstance(hf_config, dict):
        raise DataError(f"{config_path}: expected a JSON object")
    config = BertConfig.from_dict(hf_config, source=config_path)
    vocab = load_vocab(os.path.join(directory, "vocab.txt"))
    seq_len = min(DEFAULT_SEQ_LEN, config.max_position_embeddings)
    return Source(directory, "hf", vocab, _hf_lowercase(directory, vocab), seq_len)


def load_pretrained_model(path):
    """The model a pre-trained source holds, whatever its task.

    A kbert model directory is loaded with `kbert.load_model` (safe_mode, checked
    against its config.json); a Hugging Face directory or hub id is converted by
    `kbert.checkpoints.load_hf` in memory.
    """
    path = os.fspath(path)
    if _kind(path) == "kbert":
        from kbert.model_dir import load_model

        return load_model(path)
    from kbert.checkpoints.hf import load_hf

    return load_hf(path)[0]


def _head_config(model):
    return {k: v for k, v in model.get_config().items() if k not in _NOT_HEAD}


def _required_head_args(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, encoder
    return [p.name for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]


def encoder_from_pretrained(path):
    """The `BertEncoder` of any pre-trained source."""
    from kbert.models import BertEncoder

    model = load_pretrained_model(path)
    return model if isinstance(model, BertEncoder) else model.encoder


def task_from_pretrained(cls, path, **head_args):
    """A `cls` task model on the encoder of a pre-trained source.

    If the source already holds a `cls` model whose head agrees with every
    argument given, that model is returned as is (trained head included). If it
    holds a `cls` model that differs only in arguments that leave the head's
    weights their shape (e.g. `dropout`), the head's weights are kept. Otherwise a
    new head is put on the source's encoder, and the head-size arguments (e.g.
    `num_classes`) are required.
    """
    from kbert.models import BertEncoder

    head_args = {k: v for k, v in head_args.items() if v is not None}
    base = load_pretrained_model(path)
    if type(base) is cls:
        current = _head_config(base)
        unknown = sorted(set(head_args) - set(current))
        if unknown:
            raise TypeError(f"{cls.__name__}.from_pretrained got unexpected arguments {unknown}")
        if all(current[k] == v for k, v in head_args.items()):
            return base
        model = cls(base.encoder, **{**current, **head_args})
        _copy_matching_heads(base, model)
        return model
    missing = [name for name in _required_head_args(cls) if head_args.get(name) is None]
    if missing:
        held = "an encoder" if isinstance(base, BertEncoder) else f"a {type(base).__name__}"
        raise ConfigError(
            f"{path}: holds {held}, so {cls.__name__} needs a new head: pass "
            + ", ".join(f"{name}=..." for name in missing)
        )
    encoder = base if isinstance(base, BertEncoder) else base.encoder
    return cls(encoder, **head_args)


def _copy_matching_heads(source, target):
    """Copy the weights of `source`'s head layers into `target`'s layers of the
    same name where every weight has the same shape (the encoder is shared)."""
    heads = {layer.name: layer for layer in source.layers if layer is not source.encoder}
    for layer in target.layers:
        if layer is target.encoder or layer.name not in heads:
            continue
        old, new = heads[layer.name].get_weights(), layer.get_weights()
        if old and len(old) == len(new) and all(a.shape == b.shape for a, b in zip(old, new)):
            layer.set_weights(old)
