"""Hugging Face BERT directories: import (safetensors, or `pytorch_model.bin`
through `torch.load(weights_only=True)`) and export."""

import os

import numpy as np

from kbert.checkpoints.variables import _HF_IGNORED, _assign, _check_vocab, weight_map
from kbert.config import BertConfig
from kbert.errors import ConfigError, DataError
from kbert.io import read_json
from kbert.outputs import writes_output
# Architecture name -> HfArchitecture (its task, weight prefix, pooler): the registry's.
from kbert.tasks.registry import HF_ARCHITECTURES


def _resolve_hf_dir(source):
    """A local HF model directory, or a hub id downloaded when the network allows."""
    if os.path.isdir(source):
        return source
    if os.path.exists(source):
        raise DataError(f"{source}: expected a directory with config.json and model weights")
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise DataError(f"{source}: directory not found")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(
            source,
            allow_patterns=["config.json", "vocab.txt", "tokenizer_config.json", "*.safetensors"],
        )
    except Exception as e:  # offline, unknown repo, missing package
        raise DataError(
            f"{source}: not a local directory and the Hugging Face Hub download failed "
            f"({type(e).__name__}); download the model files and pass their directory"
        ) from None


def _read_hf_weights(directory):
    safetensors_path = os.path.join(directory, "model.safetensors")
    if os.path.exists(safetensors_path):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise DataError("reading model.safetensors needs `pip install safetensors` (kbert[hf])") from None
        try:
            return load_file(safetensors_path), safetensors_path
        except Exception as e:
            raise DataError(f"{safetensors_path}: cannot read safetensors ({e})") from None
    bin_path = os.path.join(directory, "pytorch_model.bin")
    if os.path.exists(bin_path):
        try:
            import torch
        except ImportError:
            raise DataError(
                f"{bin_path}: reading PyTorch weights needs torch; convert to model.safetensors "
                "or install torch"
            ) from None
        try:
            state = torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DataError(f"{bin_path}: cannot read safely with weights_only=True ({e})") from None
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}, bin_path
    raise DataError(f"{directory}: no model.safetensors or pytorch_model.bin")


def _hf_lowercase(directory, vocab):
    path = os.path.join(directory, "tokenizer_config.json")
    if os.path.exists(path):
        values = read_json(path)
        if isinstance(values, dict) and "do_lower_case" in values:
            return bool(values["do_lower_case"])
    # No tokenizer config: an uncased vocab has no upper-case letters.
    return not any(token != token.lower() for token in vocab if not token.startswith("["))


def _hf_labels(hf_config, count, source):
    id2label = hf_config.get("id2label") or {}
    try:
        labels = [str(id2label[key]) for key in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: id2label keys must be integers") from None
    if len(labels) != count:
        labels = [f"LABEL_{i}" for i in range(count)]
    return labels


def _hf_head_size(arrays, name, source):
    if name not in arrays:
        raise ConfigError(f"{source}: missing variable {name}")
    return int(np.asarray(arrays[name]).shape[0])


def load_hf(source, architecture=None):
    """Build a kbert model from a Hugging Face BERT directory (or hub id).

    Args:
        source: directory with `config.json`, `model.safetensors` (or
            `pytorch_model.bin`) and `vocab.txt`; or a hub id such as
            `bert-base-uncased` when the network is available.
        architecture: override `config.json`'s `architectures[0]`.

    Returns:
        `(model, info)` where info has `vocab`, `lowercase`, `labels`, `task`.
    """
    from kbert.tokenization.vocab import load_vocab

    directory = _resolve_hf_dir(source)
    config_path = os.path.join(directory, "config.json")
    hf_config = read_json(config_path)
    if not isinstance(hf_config, dict):
        raise DataError(f"{config_path}: expected a JSON object")
    if hf_config.get("model_type", "bert") != "bert":
        raise ConfigError(f"{config_path}: model_type is {hf_config['model_type']!r}, not 'bert'")
    architecture = architecture or (hf_config.get("architectures") or ["BertModel"])[0]
    if architecture not in HF_ARCHITECTURES:
        raise ConfigError(
            f"{config_path}: architectures[0] is {architecture!r}; supported: {sorted(HF_ARCHITECTURES)}"
        )
    arch = HF_ARCHITECTURES[architecture]
    prefix, with_pooler = arch.prefix, arch.with_pooler
    config = BertConfig.from_dict(hf_config, source=config_path)
    vocab_path = os.path.join(directory, "vocab.txt")
    vocab = load_vocab(vocab_path)
    _check_vocab(vocab, config, vocab_path)
    arrays, weights_path = _read_hf_weights(directory)
    # Old HF checkpoints name LayerNorm parameters gamma/beta, and a bare BertModel
    # file may or may not carry the "bert." prefix.
    arrays = {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
              for k, v in arrays.items()}
    if prefix == "" and any(k.startswith("bert.") for k in arrays):
        arrays = {k[len("bert."):]: v for k, v in arrays.items() if k.startswith("bert.")}
    if prefix and not any(k.startswith(prefix) for k in arrays):
        arrays = {prefix + k if k.startswith(("embeddings.", "encoder.", "pooler.")) else k: v
                  for k, v in arrays.items()}
    # Heads in HF files without a pooler still ship one sometimes; drop it then.
    if not with_pooler:
        arrays = {k: v for k, v in arrays.items() if not k.startswith(prefix + "pooler.")}

    labels = []
    num_labels = None
    if arch.label_weight:
        num_labels = _hf_head_size(arrays, arch.label_weight, weights_path)
        labels = _hf_labels(hf_config, num_labels, config_path)
    model = arch.build(config, num_labels)
    _assign(
        weight_map(model, with_pooler=with_pooler), arrays, weights_path,
        name_of=lambda x: x.hf, transpose_of=lambda x: x.hf_transpose,
        ignored=lambda n: n.endswith(_HF_IGNORED),
    )
    info = {"vocab": vocab, "lowercase": _hf_lowercase(directory, vocab), "labels": labels, "task": arch.task}
    return model, info


@writes_output("hf_export", inputs=lambda arguments: arguments["inputs"])
def export_hf(model, out, *, vocab, lowercase=True, labels=None, overwrite=False, inputs=()):
    """Write a kbert model as a Hugging Face BERT directory `transformers` loads.

    Writes `config.json`, `model.safetensors`, `vocab.txt`, `tokenizer_config.json`;
    atomically (nothing is left behind on error). An existing `out` is replaced
    only if kbert wrote it as a Hugging Face export, or with `overwrite=True`;
    never if it is or contains the current directory or one of `inputs` (the
    paths the model came from, e.g. its model dir).
    """
    from safetensors.numpy import save_file

    from kbert.io import write_json
    from kbert.outputs import output_dir, require_space
    from kbert.tasks.registry import spec_of

    require_space(out, 4 * model.count_params())
    row = spec_of(model)
    arch = row.hf_architecture(model)
    encoder = row.encoder(model)
    tensors = {}
    for entry in weight_map(model, with_pooler=arch.with_pooler):
        value = np.asarray(entry.variable.numpy(), dtype=np.float32)
        tensors[entry.hf] = np.ascontiguousarray(value.T if entry.hf_transpose else value)
    hf_config = encoder.config.to_external_dict("hf")
    hf_config["architectures"] = [arch.name]
    if labels:
        hf_config["id2label"] = {str(i): label for i, label in enumerate(labels)}
        hf_config["label2id"] = {label: i for i, label in enumerate(labels)}
    hf_config.update(row.hf_config(model))
    with output_dir(out, "hf_export") as tmp:
        write_json(os.path.join(tmp, "config.json"), hf_config)
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in vocab))
        write_json(os.path.join(tmp, "tokenizer_config.json"), {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": bool(lowercase),
            "model_max_length": encoder.config.max_position_embeddings,
        })
