"""The one table from each kbert variable to its Google and Hugging Face names.

Import and export read the same table both ways (see `kbert.checkpoints`).
"""

import dataclasses

import numpy as np

from kbert.errors import ConfigError

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
