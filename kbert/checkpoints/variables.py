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
class Entry:
    """One kbert variable and its names in the other formats.

    `hf_transpose`/`google_transpose`: the external array is the transpose of the
    kbert one (torch Linear stores `[out, in]`; Keras Dense stores `[in, out]`).
    """

    variable: object
    hf: str
    google: str | None
    hf_transpose: bool = False
    google_transpose: bool = False


def dense_entries(layer, hf, google):
    """Entries of a Dense layer's kernel and bias."""
    return [
        Entry(layer.kernel, f"{hf}.weight", google and f"{google}/kernel", hf_transpose=True),
        Entry(layer.bias, f"{hf}.bias", google and f"{google}/bias"),
    ]


def norm_entries(layer, hf, google):
    """Entries of a LayerNormalization's gamma and beta."""
    return [
        Entry(layer.gamma, f"{hf}.weight", google and f"{google}/gamma"),
        Entry(layer.beta, f"{hf}.bias", google and f"{google}/beta"),
    ]


def _encoder_entries(encoder, prefix, with_pooler=True):
    e = encoder.embeddings
    entries = [
        Entry(e.token_embedding.embeddings, "embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings"),
        Entry(e.position_embeddings, "embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings"),
        Entry(e.segment_embedding.embeddings, "embeddings.token_type_embeddings.weight",
               "bert/embeddings/token_type_embeddings"),
        *norm_entries(e.layer_norm, "embeddings.LayerNorm", "bert/embeddings/LayerNorm"),
    ]
    for i, block in enumerate(encoder.transformer_layers):
        hf, g = f"encoder.layer.{i}", f"bert/encoder/layer_{i}"
        entries += [
            *dense_entries(block.query, f"{hf}.attention.self.query", f"{g}/attention/self/query"),
            *dense_entries(block.key, f"{hf}.attention.self.key", f"{g}/attention/self/key"),
            *dense_entries(block.value, f"{hf}.attention.self.value", f"{g}/attention/self/value"),
            *dense_entries(block.attention_output, f"{hf}.attention.output.dense", f"{g}/attention/output/dense"),
            *norm_entries(block.attention_norm, f"{hf}.attention.output.LayerNorm", f"{g}/attention/output/LayerNorm"),
            *dense_entries(block.intermediate, f"{hf}.intermediate.dense", f"{g}/intermediate/dense"),
            *dense_entries(block.output_dense, f"{hf}.output.dense", f"{g}/output/dense"),
            *norm_entries(block.output_norm, f"{hf}.output.LayerNorm", f"{g}/output/LayerNorm"),
        ]
    if with_pooler:
        entries += dense_entries(encoder.pooler.dense, "pooler.dense", "bert/pooler/dense")
    return [dataclasses.replace(x, hf=prefix + x.hf) for x in entries]


def weight_map(model, with_pooler=True):
    """Every variable of a kbert model with its HF and Google names.

    The encoder's names are here; each task's head adds its own
    (`kbert.tasks.registry`, `TaskSpec.head_weights`).

    Args:
        model: a kbert model.
        with_pooler: include the pooler (HF's token/QA/MLM models have none).
    """
    from kbert.tasks.registry import spec_of

    row = spec_of(model)
    encoder = row.encoder(model)
    entries = _encoder_entries(encoder, "" if encoder is model else "bert.", with_pooler)
    return entries + row.head_weights(model)


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
