"""Masked examples written once to TFRecord shards, and read back (Google's mode).

`write_tfrecords` streams the corpus `dupe_factor` times through instances and
NumPy masking, deals the examples round-robin into shards and describes them
in `pretrain_data.json` (config, vocabulary size and hash, counts, seed), all
inside a temporary directory renamed into place when complete. The same
inputs, tokenizer and config give byte-identical files. `read_data_info`
checks such a directory and `tfrecord_dataset` reads it as Keras-ready batches.
Masks are fixed when written; `dynamic_dataset` is the alternative that draws
new ones every epoch.
"""

import collections
import json
import os

import numpy as np
import tensorflow as tf

from kbert.data.pretraining.config import PretrainingConfig, check_batch_size
from kbert.data.pretraining.documents import check_split, expand_paths, iter_documents
from kbert.data.pretraining.features import feature_spec, to_keras
from kbert.data.pretraining.instances import OneDocumentError, instance_stream, tokenize_documents
from kbert.data.pretraining.masking import MaskingSpec
from kbert.data.pretraining.vocab import Vocab
from kbert.errors import DataError, KbertError
from kbert.io import read_json
from kbert.outputs import output_dir, writes_output

DATA_INFO = "pretrain_data.json"
DATA_FORMAT = "kbert-pretrain-data"
DATA_VERSION = 1
SHARD_NAME = "pretrain-{:05d}-of-{:05d}.tfrecord"


def _int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _serialize(instance, masked, seq_len):
    n = len(masked.token_ids)
    pad = [0] * (seq_len - n)
    feature = {
        "token_ids": _int_feature(masked.token_ids.tolist() + pad),
        "segment_ids": _int_feature(instance["segment_ids"].tolist() + pad),
        "padding_mask": _int_feature([1] * n + pad),
        "mask_positions": _int_feature(masked.mask_positions.tolist()),
        "mask_ids": _int_feature(masked.mask_ids.tolist()),
        "mask_weights": tf.train.Feature(
            float_list=tf.train.FloatList(value=masked.mask_weights.tolist())
        ),
        "nsp_label": _int_feature([instance["nsp_label"]]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Features is a protobuf map, whose default serialization order varies
    # between processes; deterministic=True sorts it (same seed, same bytes).
    return example.SerializeToString(deterministic=True)


@writes_output("pretrain_data", out="out_dir", inputs=("paths",))
def write_tfrecords(
    paths,
    tokenizer,
    out_dir,
    config=None,
    num_shards=8,
    progress=True,
    split_sentences=False,
    holdout=0.0,
    split="train",
    compression="GZIP",
    overwrite=False,
):
    """Write masked pre-training examples to TFRecord shards (Google's mode).

    Streams the files `config.dupe_factor` times (re-reading them, so memory
    stays flat), each pass with new pairs and masks; examples go round-robin
    into `num_shards` files `pretrain-00000-of-000NN.tfrecord` in `out_dir`,
    with `pretrain_data.json` describing them (config, vocab size and sha256,
    counts, seed). Everything is written into a temporary directory renamed to
    `out_dir` only when complete; an existing `out_dir` is replaced if it is
    pre-training data kbert wrote (else only with `overwrite=True`). The same
    inputs, tokenizer and config give byte-identical files.

    Each example has int64 features `token_ids`, `segment_ids`, `padding_mask`
    (`[seq_len]`), `mask_positions`, `mask_ids` (`[max_predictions_per_seq]`),
    `nsp_label` (`[1]`) and float `mask_weights`. `token_ids` are the masked ids.

    Args:
        paths: text files or glob patterns (see `read_documents`).
        tokenizer: a `kbert.BertTokenizer`.
        out_dir: the output directory.
        config: a `PretrainingConfig`.
        num_shards: number of TFRecord files.
        progress: show a progress bar over the input bytes.
        split_sentences: the input is paragraphs (see `read_documents`).
        holdout, split: hold out documents (see `read_documents`); write the
            "train" side for training and the "heldout" side, with the same
            `holdout`, for evaluation.
        compression: "GZIP" (default) or None. GZIP makes the files about 3x
            smaller and costs nothing when writing; reading is ~25% slower
            (about 30k instead of 40k examples/s on 2 CPUs, still far more than
            a training step consumes).
        overwrite: replace an existing `out_dir` that is not a kbert
            pre-training data directory (never one holding an input).

    Returns:
        The `pretrain_data.json` contents as a dict.

    Raises:
        DataError: unreadable input (naming the file and line), no text, or a
            single document.

    Examples:

    >>> write_tfrecords("corpus/*.txt", tokenizer, "runs/data", PretrainingConfig())
    >>> ds = tfrecord_dataset("runs/data", batch_size=32)
    """
    import tqdm

    config = config or PretrainingConfig()
    files = expand_paths(paths)
    check_split(holdout, split)
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise KbertError(f"num_shards: expected a positive integer, got {num_shards!r}")
    if compression not in ("GZIP", None):
        raise KbertError(f"compression: expected 'GZIP' or None, got {compression!r}")
    vocab = Vocab(tokenizer)
    masking = MaskingSpec.from_tokenizer(vocab, config)
    # One generator for pairs and masks, in stream order: the output depends
    # on the seed only.
    rng = np.random.default_rng(config.seed)
    names = [SHARD_NAME.format(i, num_shards) for i in range(num_shards)]
    per_pass = sum(os.path.getsize(f) for f in files)
    counts = collections.Counter()
    written = collections.Counter()

    bar = tqdm.tqdm(
        total=per_pass * config.dupe_factor, unit="B", unit_scale=True,
        desc="pretraining data", disable=not progress,
    )
    try:
        with output_dir(out_dir, "pretrain_data") as tmp:
            options = tf.io.TFRecordOptions(compression_type=compression or "")
            writers = [tf.io.TFRecordWriter(os.path.join(tmp, n), options) for n in names]
            try:
                for dupe in range(config.dupe_factor):
                    documents = iter_documents(files, split_sentences, holdout, split, bar.update)
                    tokenized = tokenize_documents(
                        documents, tokenizer, counts if dupe == 0 else None
                    )
                    try:
                        for instance in instance_stream(tokenized, config, rng, vocab):
                            masked = masking.mask(instance["token_ids"], rng, instance["word_starts"])
                            k = written["instances"] % num_shards
                            writers[k].write(_serialize(instance, masked, config.seq_len))
                            written["instances"] += 1
                            written["tokens"] += len(instance["token_ids"])
                            written["predictions"] += int(masked.mask_weights.sum())
                            written["random_next"] += instance["nsp_label"]
                    except OneDocumentError as e:
                        where = ", ".join(files) + (f" ({split} split)" if holdout else "")
                        raise DataError(f"{where}: {e}") from None
                    if not written["instances"]:
                        what = "no text" if split == "train" else "no held-out documents"
                        raise DataError(
                            f"{', '.join(files)}: {what} to make pre-training data from"
                        )
            finally:
                for writer in writers:
                    writer.close()
            info = {
                "format": DATA_FORMAT,
                "version": DATA_VERSION,
                "config": config.to_dict(),
                "seed": config.seed,
                "vocab_size": vocab.size,
                "vocab_sha256": vocab.sha256,
                "lowercase": bool(tokenizer.lowercase),
                "inputs": files,
                "split_sentences": bool(split_sentences),
                "holdout": holdout,
                "split": split,
                "compression": compression,
                "files": names,
                "counts": {
                    "documents": counts["documents"],
                    "sentences": counts["sentences"],
                    "input_tokens": counts["tokens"],
                    "instances": written["instances"],
                    "instance_tokens": written["tokens"],
                    "predictions": written["predictions"],
                    "random_next": written["random_next"],
                },
            }
            with open(os.path.join(tmp, DATA_INFO), "w", encoding="utf-8") as f:
                json.dump(info, f, indent=2)
                f.write("\n")
    finally:
        bar.close()
    return info


def read_data_info(path):
    """Read and check `pretrain_data.json` of a `write_tfrecords` directory.

    Args:
        path: the directory written by `write_tfrecords`.

    Returns:
        The JSON as a dict, with `config` turned into a `PretrainingConfig`.
        `vocab_size` and `vocab_sha256` (of the vocabulary as a `vocab.txt`,
        one token per line) let a caller check the data against a model.

    Raises:
        DataError: the directory or its `pretrain_data.json` is missing or not
            ours, or a listed shard is missing.

    Examples:

    >>> read_data_info("runs/data")["counts"]["instances"]
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DataError(f"{path}: not a directory of pre-training data")
    info_path = os.path.join(path, DATA_INFO)
    if not os.path.exists(info_path):
        raise DataError(
            f"{path}: no {DATA_INFO}; not written by write_tfrecords (or incomplete)"
        )
    info = read_json(info_path)
    if not isinstance(info, dict) or info.get("format") != DATA_FORMAT:
        raise DataError(f"{info_path}: not a kbert pre-training data description")
    if info.get("version") != DATA_VERSION:
        raise DataError(
            f"{info_path}: version {info.get('version')!r} is not supported "
            f"(expected {DATA_VERSION})"
        )
    try:
        info["config"] = PretrainingConfig.from_dict(info.get("config"), f"{info_path}: config")
    except KbertError as e:
        raise DataError(str(e)) from None
    for name in info.get("files", []):
        if not os.path.isfile(os.path.join(path, name)):
            raise DataError(f"{path}: shard {name} listed in {DATA_INFO} is missing")
    return info


def tfrecord_dataset(path, batch_size, shuffle=True, seed=None, repeat=True, shuffle_buffer=10000):
    """Read a `write_tfrecords` directory as a Keras-ready dataset.

    Args:
        path: the directory written by `write_tfrecords`.
        batch_size: int. Incomplete last batches are dropped (fixed shapes for XLA).
        shuffle: shuffle the shard order and the examples (through a buffer of
            `shuffle_buffer`), anew each epoch.
        seed: seed of the shuffling; None for a random one.
        repeat: repeat forever (use `steps_per_epoch` in `fit`).
        shuffle_buffer: examples in the shuffle buffer.

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)`: x = dict of int32
        `token_ids`, `segment_ids`, `padding_mask` `[batch, seq_len]` and
        `mask_positions` `[batch, max_predictions_per_seq]`; y = {"mlm": int32
        original ids at the masked positions, "nsp": int32 `[batch]` label};
        sample_weight = {"mlm": float32 mask weights, "nsp": float32 ones}.

    Raises:
        DataError: `path` is not a complete `write_tfrecords` directory.

    Examples:

    >>> ds = tfrecord_dataset("runs/data", batch_size=32, seed=0)
    >>> model.fit(ds, steps_per_epoch=1000, epochs=10)
    """
    info = read_data_info(path)
    check_batch_size(batch_size)
    config = info["config"]
    files = [os.path.join(os.fspath(path), name) for name in info["files"]]
    compression = info.get("compression") or ""
    spec = feature_spec(config)

    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=min(len(files), 16),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(
        lambda records: to_keras(tf.io.parse_example(records, spec)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
