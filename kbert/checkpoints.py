"""Import Google BERT and Hugging Face checkpoints; export to Hugging Face.

Why our own code: keras-hub's converters load into keras-hub's own backbone (with
a different variable layout and no NSP/QA heads) and need the network, and HF
dropped TensorFlow. The mapping here is one table from each kbert variable to its
Google and HF names, so import and export are the same table read both ways.

Sources are read without unpickling: Google checkpoints with
`tf.train.load_checkpoint`, HF weights from `model.safetensors` (or
`pytorch_model.bin` through `torch.load(weights_only=True)` when torch is
installed). Every mismatch (missing or unexpected variable, wrong shape, vocab
size different from the embedding matrix) raises one `ConfigError` naming the
variable before anything is written.
"""

import dataclasses
import os

import numpy as np

from kbert.config import BertConfig
from kbert.errors import ConfigError, DataError
from kbert.io import read_json

# HF architectures -> (kbert task, HF weight prefix of the encoder, has pooler)
HF_ARCHITECTURES = {
    "BertModel": ("encoder", "", True),
    "BertForPreTraining": ("pretrain", "bert.", True),
    "BertForMaskedLM": ("pretrain", "bert.", False),
    "BertForSequenceClassification": ("classify", "bert.", True),
    "BertForTokenClassification": ("ner", "bert.", False),
    "BertForQuestionAnswering": ("qa", "bert.", False),
}

# Names in HF files that carry no weights of their own.
_HF_IGNORED = ("position_ids", "cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
# Google checkpoints also hold optimizer slots and the step counter.
_GOOGLE_IGNORED_SUFFIXES = ("/adam_m", "/adam_v", "global_step", "/Momentum", "/ExponentialMovingAverage")


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One kbert variable and its names in the other formats.

    `hf_transpose`/`google_transpose`: the external array is the transpose of the
    kbert one (torch Linear stores `[out, in]`; Keras Dense stores `[in, out]`).
    """

    variable: object
    hf: str
    google: str | None
    hf_transpose: bool = False
    google_transpose: bool = False


def _dense(layer, hf, google):
    return [
        _Entry(layer.kernel, f"{hf}.weight", google and f"{google}/kernel", hf_transpose=True),
        _Entry(layer.bias, f"{hf}.bias", google and f"{google}/bias"),
    ]


def _norm(layer, hf, google):
    return [
        _Entry(layer.gamma, f"{hf}.weight", google and f"{google}/gamma"),
        _Entry(layer.beta, f"{hf}.bias", google and f"{google}/beta"),
    ]


def _encoder_entries(encoder, prefix, with_pooler=True):
    e = encoder.embeddings
    entries = [
        _Entry(e.token_embedding.embeddings, "embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings"),
        _Entry(e.position_embeddings, "embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings"),
        _Entry(e.segment_embedding.embeddings, "embeddings.token_type_embeddings.weight",
               "bert/embeddings/token_type_embeddings"),
        *_norm(e.layer_norm, "embeddings.LayerNorm", "bert/embeddings/LayerNorm"),
    ]
    for i, block in enumerate(encoder.transformer_layers):
        hf, g = f"encoder.layer.{i}", f"bert/encoder/layer_{i}"
        entries += [
            *_dense(block.query, f"{hf}.attention.self.query", f"{g}/attention/self/query"),
            *_dense(block.key, f"{hf}.attention.self.key", f"{g}/attention/self/key"),
            *_dense(block.value, f"{hf}.attention.self.value", f"{g}/attention/self/value"),
            *_dense(block.attention_output, f"{hf}.attention.output.dense", f"{g}/attention/output/dense"),
            *_norm(block.attention_norm, f"{hf}.attention.output.LayerNorm", f"{g}/attention/output/LayerNorm"),
            *_dense(block.intermediate, f"{hf}.intermediate.dense", f"{g}/intermediate/dense"),
            *_dense(block.output_dense, f"{hf}.output.dense", f"{g}/output/dense"),
            *_norm(block.output_norm, f"{hf}.output.LayerNorm", f"{g}/output/LayerNorm"),
        ]
    if with_pooler:
        entries += _dense(encoder.pooler.dense, "pooler.dense", "bert/pooler/dense")
    return [dataclasses.replace(x, hf=prefix + x.hf) for x in entries]


def weight_map(model, with_pooler=True):
    """Every variable of a kbert model with its HF and Google names.

    Args:
        model: a kbert model.
        with_pooler: include the pooler (HF's token/QA/MLM models have none).
    """
    from kbert.models import task_of

    task = task_of(model)
    if task == "encoder":
        return _encoder_entries(model, "", with_pooler)
    entries = _encoder_entries(model.encoder, "bert.", with_pooler)
    if task == "pretrain":
        head = model.mlm_head
        entries += _dense(head.dense, "cls.predictions.transform.dense", "cls/predictions/transform/dense")
        entries += _norm(head.layer_norm, "cls.predictions.transform.LayerNorm", "cls/predictions/transform/LayerNorm")
        entries.append(_Entry(head.output_bias, "cls.predictions.bias", "cls/predictions/output_bias"))
        if model.nsp_head is not None:
            nsp = model.nsp_head.dense
            entries += [
                _Entry(nsp.kernel, "cls.seq_relationship.weight", "cls/seq_relationship/output_weights",
                       hf_transpose=True, google_transpose=True),
                _Entry(nsp.bias, "cls.seq_relationship.bias", "cls/seq_relationship/output_bias"),
            ]
    elif task in ("classify", "ner"):
        entries += _dense(model.head.dense, "classifier", None)
    elif task == "qa":
        entries += _dense(model.head.dense, "qa_outputs", None)
    return entries


def _assign(entries, arrays, source, name_of, transpose_of, ignored):
    """Check names and shapes of `arrays` against `entries`, then assign all."""
    expected = {name_of(x): x for x in entries}
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise ConfigError(f"{source}: missing variable {missing[0]}" + (
            f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    unexpected = sorted(n for n in arrays if n not in expected and not ignored(n))
    if unexpected:
        raise ConfigError(f"{source}: unexpected variable {unexpected[0]}" + (
            f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    values = []
    for name, entry in expected.items():
        value = np.asarray(arrays[name])
        if transpose_of(entry):
            value = value.T
        if tuple(value.shape) != tuple(entry.variable.shape):
            shown = value.T.shape if transpose_of(entry) else value.shape
            raise ConfigError(
                f"{source}: variable {name} has shape {tuple(shown)}, the config implies "
                f"{tuple(entry.variable.shape[::-1] if transpose_of(entry) else entry.variable.shape)}"
            )
        values.append((entry.variable, value))
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))


def _check_vocab(vocab, config, vocab_path):
    if len(vocab) != config.vocab_size:
        raise ConfigError(
            f"{vocab_path}: {len(vocab)} tokens but the embedding matrix has "
            f"{config.vocab_size} rows (vocab_size)"
        )


# ---------------------------------------------------------------- Hugging Face

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


def _build(task, config, num_labels=None, next_sentence=True):
    from kbert.models import BertClassifier, BertEncoder, BertPretrainer, BertQuestionAnswerer, BertTagger

    encoder = BertEncoder(config)
    if task == "encoder":
        return encoder
    if task == "pretrain":
        return BertPretrainer(encoder, next_sentence=next_sentence)
    if task == "classify":
        return BertClassifier(encoder, num_labels, dropout=config.hidden_dropout)
    if task == "ner":
        return BertTagger(encoder, num_labels, dropout=config.hidden_dropout)
    return BertQuestionAnswerer(encoder)


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
    from kbert.vocab import load_vocab

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
    task, prefix, with_pooler = HF_ARCHITECTURES[architecture]
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
    if task in ("classify", "ner"):
        num_labels = _hf_head_size(arrays, "classifier.weight", weights_path)
        labels = _hf_labels(hf_config, num_labels, config_path)
    next_sentence = architecture == "BertForPreTraining"
    model = _build(task, config, num_labels, next_sentence)
    _assign(
        weight_map(model, with_pooler=with_pooler), arrays, weights_path,
        name_of=lambda x: x.hf, transpose_of=lambda x: x.hf_transpose,
        ignored=lambda n: n.endswith(_HF_IGNORED),
    )
    info = {"vocab": vocab, "lowercase": _hf_lowercase(directory, vocab), "labels": labels, "task": task}
    return model, info


def export_hf(model, out, *, vocab, lowercase=True, labels=None):
    """Write a kbert model as a Hugging Face BERT directory `transformers` loads.

    Writes `config.json`, `model.safetensors`, `vocab.txt`, `tokenizer_config.json`;
    atomically (nothing is left behind on error).
    """
    from safetensors.numpy import save_file

    from kbert.io import atomic_dir, write_json
    from kbert.models import task_of

    task = task_of(model)
    architecture = {
        "encoder": "BertModel",
        "pretrain": "BertForPreTraining" if task == "pretrain" and model.next_sentence else "BertForMaskedLM",
        "classify": "BertForSequenceClassification",
        "ner": "BertForTokenClassification",
        "qa": "BertForQuestionAnswering",
    }[task]
    with_pooler = HF_ARCHITECTURES[architecture][2]
    encoder = model if task == "encoder" else model.encoder
    tensors = {}
    for entry in weight_map(model, with_pooler=with_pooler):
        value = np.asarray(entry.variable.numpy(), dtype=np.float32)
        tensors[entry.hf] = np.ascontiguousarray(value.T if entry.hf_transpose else value)
    hf_config = encoder.config.to_external_dict("hf")
    hf_config["architectures"] = [architecture]
    if labels:
        hf_config["id2label"] = {str(i): label for i, label in enumerate(labels)}
        hf_config["label2id"] = {label: i for i, label in enumerate(labels)}
    if task == "classify" and model.num_classes == 1:
        hf_config["problem_type"] = "regression"
        hf_config["num_labels"] = 1
    with atomic_dir(out) as tmp:
        write_json(os.path.join(tmp, "config.json"), hf_config)
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in vocab))
        write_json(os.path.join(tmp, "tokenizer_config.json"), {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": bool(lowercase),
            "model_max_length": encoder.config.max_position_embeddings,
        })


# ---------------------------------------------------------------- Google

def _google_prefix(directory):
    names = os.listdir(directory)
    if "bert_model.ckpt.index" in names:
        return os.path.join(directory, "bert_model.ckpt")
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(directory)
    if latest:
        return latest
    indexes = sorted(n for n in names if n.endswith(".index"))
    if indexes:
        return os.path.join(directory, indexes[0][: -len(".index")])
    raise DataError(f"{directory}: no TF checkpoint (bert_model.ckpt.index) found")


def load_google(directory, lowercase=None):
    """Build a kbert pre-training model from Google's original BERT release.

    Reads `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*` with
    `tf.train.load_checkpoint` (no TF1 graph). The encoder and both pre-training
    heads are imported; a checkpoint without `cls/seq_relationship/*` gives an
    MLM-only model, one without `cls/` at all a bare encoder.

    Args:
        directory: the unzipped release directory.
        lowercase: tokenizer casing; default guesses from the vocab (an uncased
            vocab has no upper-case tokens).
    """
    import tensorflow as tf

    from kbert.vocab import load_vocab

    if not os.path.isdir(directory):
        raise DataError(f"{directory}: directory not found")
    config_path = os.path.join(directory, "bert_config.json")
    config = BertConfig.from_json(config_path)
    vocab_path = os.path.join(directory, "vocab.txt")
    vocab = load_vocab(vocab_path)
    _check_vocab(vocab, config, vocab_path)
    prefix = _google_prefix(directory)
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = list(reader.get_variable_to_shape_map())
        arrays = {n: reader.get_tensor(n) for n in names if not n.endswith(_GOOGLE_IGNORED_SUFFIXES)}
    except (tf.errors.OpError, ValueError) as e:
        raise DataError(f"{prefix}: cannot read TF checkpoint ({e})") from None
    if "cls/predictions/output_bias" in arrays:
        task = "pretrain"
        next_sentence = "cls/seq_relationship/output_weights" in arrays
    else:
        task, next_sentence = "encoder", False
    model = _build(task, config, next_sentence=next_sentence)
    _assign(
        weight_map(model), arrays, prefix + ".*",
        name_of=lambda x: x.google, transpose_of=lambda x: x.google_transpose,
        ignored=lambda n: False,
    )
    if lowercase is None:
        lowercase = not any(token != token.lower() for token in vocab if not token.startswith("["))
    return model, {"vocab": vocab, "lowercase": lowercase, "labels": [], "task": task}


def import_checkpoint(source, out, fmt, seq_len=128, architecture=None):
    """Import a Google (`fmt="google"`) or HF (`fmt="hf"`) checkpoint as a model dir."""
    from kbert.model_dir import save_model

    if fmt == "google":
        model, info = load_google(source)
    elif fmt == "hf":
        model, info = load_hf(source, architecture=architecture)
    else:
        raise ValueError(f"fmt must be 'google' or 'hf', got {fmt!r}")
    encoder = model if info["task"] == "encoder" else model.encoder
    seq_len = min(seq_len, encoder.config.max_position_embeddings)
    return save_model(
        model, out, vocab=info["vocab"], lowercase=info["lowercase"], labels=info["labels"],
        seq_len=seq_len,
    )
