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
            allow_patterns=["config.json", "vocab.txt", "tokenizer_config.json", "*.safetensors",
                            # a sentence-transformers model's pooling
                            "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"],
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

    A sentence-transformers directory (`modules.json`: Transformer, Pooling
    and optionally Normalize) becomes a `kbert.BertTextEmbedder` with the
    pooling its `1_Pooling/config.json` declares (`architecture="BertModel"`
    imports its encoder alone).

    Args:
        source: directory with `config.json`, `model.safetensors` (or
            `pytorch_model.bin`) and `vocab.txt`; or a hub id such as
            `bert-base-uncased` when the network is available.
        architecture: override `config.json`'s `architectures[0]`
            (`SentenceTransformer`: read `modules.json`).

    Returns:
        `(model, info)` where info has `vocab`, `lowercase`, `labels`, `task`
        and `seq_len` (a sentence-transformers model's `max_seq_length`, else None).
    """
    from kbert.tasks.registry import spec
    from kbert.tokenization.vocab import load_vocab

    directory = _resolve_hf_dir(source)
    sentence_model = None
    if architecture in (None, "SentenceTransformer"):
        sentence_model = read_sentence_transformers(directory)
        if sentence_model is None and architecture is not None:
            raise ConfigError(f"{directory}: no modules.json, so not a sentence-transformers directory")
    if sentence_model is not None:
        directory, architecture = sentence_model["transformer"], "SentenceTransformer"
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
    if sentence_model is not None:
        _check_sentence_model(sentence_model, config, directory, vocab)
        from kbert.models import BertEncoder

        model = spec(arch.task).build(BertEncoder(config), pooling=sentence_model["pooling"],
                                      normalize=sentence_model["normalize"])
        # Its pooling never reads BERT's pooler; files without one keep the fresh one.
        with_pooler = "pooler.dense.weight" in arrays
    else:
        model = arch.build(config, num_labels)
    if arch.prefix == "" and spec(arch.task).encoder(model) is not model:
        arrays = {"bert." + k: v for k, v in arrays.items()}  # a BertModel file under a task model's names
    _assign(
        weight_map(model, with_pooler=with_pooler), arrays, weights_path,
        name_of=lambda x: x.hf, transpose_of=lambda x: x.hf_transpose,
        ignored=lambda n: n.endswith(_HF_IGNORED),
    )
    info = {"vocab": vocab, "lowercase": _hf_lowercase(directory, vocab), "labels": labels, "task": arch.task,
            "seq_len": sentence_model["seq_len"] if sentence_model else None}
    return model, info


# sentence-transformers' Pooling config fields, as kbert's pooling modes.
_POOLING_FIELDS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                   "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len"}
_UNSUPPORTED_POOLING = ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
_ST_MODULES = ("Transformer", "Pooling", "Normalize")


def read_sentence_transformers(directory):
    """What a sentence-transformers directory declares, or None without `modules.json`.

    Returns:
        dict with `transformer` (the directory of its BERT files), `pooling`
        (a kbert pooling mode), `normalize` (a Normalize module follows),
        `seq_len` (`sentence_bert_config.json`'s `max_seq_length`, or None)
        and `lowercase` (its `do_lower_case`).

    Raises:
        ConfigError: modules other than Transformer, Pooling and Normalize (in
            that order; e.g. a Dense projection), several pooling modes or
            one kbert does not have, naming the file and field.
    """
    path = os.path.join(directory, "modules.json")
    if not os.path.isfile(path):
        return None
    modules = read_json(path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise DataError(f"{path}: expected a list of module objects")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    for i, kind in enumerate(kinds):
        if kind not in _ST_MODULES:
            raise ConfigError(f"{path}: module {i} is {modules[i].get('type')!r}; kbert imports "
                              "Transformer, Pooling and Normalize modules only")
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ConfigError(f"{path}: modules are {kinds}; kbert imports Transformer, Pooling[, Normalize]")
    transformer = os.path.join(directory, str(modules[0].get("path") or ""))
    pooling_path = os.path.join(directory, str(modules[1].get("path") or ""), "config.json")
    pooling = read_json(pooling_path)
    if not isinstance(pooling, dict):
        raise DataError(f"{pooling_path}: expected a JSON object")
    for field in _UNSUPPORTED_POOLING:
        if pooling.get(field):
            raise ConfigError(f"{pooling_path}: {field} is true; kbert pools by "
                              f"{', '.join(_POOLING_FIELDS)} (one of them)")
    modes = [mode for field, mode in _POOLING_FIELDS.items() if pooling.get(field)]
    if len(modes) != 1:
        raise ConfigError(f"{pooling_path}: expected exactly one of {', '.join(_POOLING_FIELDS)} true, "
                          f"got {len(modes)}")
    settings_path = os.path.join(transformer, "sentence_bert_config.json")
    settings = read_json(settings_path) if os.path.isfile(settings_path) else {}
    seq_len = settings.get("max_seq_length") if isinstance(settings, dict) else None
    if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, int)):
        raise DataError(f"{settings_path}: field 'max_seq_length' has the wrong type ({type(seq_len).__name__})")
    return {"transformer": transformer, "pooling": modes[0], "normalize": len(modules) == 3, "seq_len": seq_len,
            "lowercase": bool(settings.get("do_lower_case")) if isinstance(settings, dict) else False,
            "dimension": pooling.get("word_embedding_dimension"), "pooling_path": pooling_path}


def _check_sentence_model(declared, config, directory, vocab):
    if declared["dimension"] not in (None, config.hidden_size):
        raise ConfigError(f"{declared['pooling_path']}: word_embedding_dimension is {declared['dimension']}, "
                          f"the model's hidden_size {config.hidden_size}")
    if declared["lowercase"] and not _hf_lowercase(directory, vocab):
        raise ConfigError(f"{os.path.join(directory, 'sentence_bert_config.json')}: do_lower_case with a cased "
                          "tokenizer is not supported (kbert lowercases in the tokenizer only)")
    if declared["seq_len"] is not None:
        declared["seq_len"] = min(declared["seq_len"], config.max_position_embeddings)


def sentence_transformers_files(model, seq_len=None):
    """The sentence-transformers files of an HF export of a `BertTextEmbedder`:
    `{relative path: JSON value}` for modules.json, 1_Pooling/config.json and,
    with `seq_len`, sentence_bert_config.json."""
    modes = {mode: field for field, mode in _POOLING_FIELDS.items()}
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if model.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    pooling = {"word_embedding_dimension": model.encoder.config.hidden_size,
               **{field: modes[model.pooling] == field for field in _POOLING_FIELDS}}
    files = {"modules.json": modules, "1_Pooling/config.json": pooling}
    if seq_len is not None:
        files["sentence_bert_config.json"] = {"max_seq_length": int(seq_len), "do_lower_case": False}
    return files


@writes_output("hf_export", inputs=lambda arguments: arguments["inputs"])
def export_hf(model, out, *, vocab, lowercase=True, labels=None, overwrite=False, inputs=(), seq_len=None):
    """Write a kbert model as a Hugging Face BERT directory `transformers` loads.

    Writes `config.json`, `model.safetensors`, `vocab.txt`, `tokenizer_config.json`
    (an embedder also `modules.json`, `1_Pooling/config.json` and, given
    `seq_len`, `sentence_bert_config.json`: a sentence-transformers model);
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
    # A bare BertModel file (an embedder's) has no "bert." prefix.
    strip = len("bert.") if arch.prefix == "" and encoder is not model else 0
    for entry in weight_map(model, with_pooler=arch.with_pooler):
        value = np.asarray(entry.variable.numpy(), dtype=np.float32)
        tensors[entry.hf[strip:]] = np.ascontiguousarray(value.T if entry.hf_transpose else value)
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
        for name, value in row.hf_files(model, seq_len=seq_len).items():
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            write_json(os.path.join(tmp, name), value)
