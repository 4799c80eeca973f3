"""The dynamic dataset: instances built on the fly, masked in the `tf.data` graph.

A Python generator streams the corpus through `instances` (a new pass, with
new pairs, every epoch) and hands out padded chunks; `tf.data` shuffles them,
batches them and masks every batch with `MaskingSpec.mask_tf` in a parallel
map, seeded from `tf.data.Dataset.random`, so every epoch sees new pairs and
new masks while the whole stream is reproducible from one seed.

Two things make a Python generator inside `tf.data` safe to use:

* Errors. TensorFlow reports an exception raised by the generator as a
  `tf.errors.OpError` whose message quotes it; `data_errors()` turns it back
  into kbert's own error (read from that message, so nothing is kept between
  calls), which the CLI prints as one line.
* Exit. tf.data calls the generator from its own threads; one that calls into
  Python while the interpreter shuts down can hang the exit. `_GeneratorGuard`
  winds the pipelines down first.
"""

import atexit
import contextlib
import itertools
import re
import threading
import time

import numpy as np
import tensorflow as tf

import kbert.errors as kbert_errors
from kbert.data.pretraining.config import PretrainingConfig, check_batch_size
from kbert.data.pretraining.documents import check_split, expand_paths, iter_documents
from kbert.data.pretraining.features import to_keras
from kbert.data.pretraining.instances import OneDocumentError, instance_stream, tokenize_documents
from kbert.data.pretraining.masking import MaskingSpec
from kbert.data.pretraining.vocab import Vocab
from kbert.errors import DataError, KbertError

# Instances per generator step: from_generator costs ~0.7 ms per element, which
# one instance at a time would make the bottleneck (1.2k instead of 5k+/s).
CHUNK = 256


class _GeneratorGuard:
    """Lets `dynamic_dataset` pipelines wind down before Python exits.

    tf.data calls a generator from its own threads, ahead of the consumer. A
    thread that calls into Python once the interpreter is shutting down is
    terminated on the spot, and the iterator's destructor then waits for it
    forever (tensorflow#22632; we saw ~1 exit in 5 hang). So at exit, while
    Python still runs normally, we make every generator step end its
    generator at once, which takes the pipeline to its end, and wait until
    tf.data has stopped calling.
    """

    QUIET = 0.25  # seconds without a step after which the pipelines are idle

    def __init__(self):
        self._changed = threading.Condition()
        self._running = 0
        self._last = 0.0
        self._stopping = False

    @contextlib.contextmanager
    def step(self):
        with self._changed:
            self._last = time.monotonic()
            if self._stopping:
                yield False
                return
            self._running += 1
        try:
            yield True
        finally:
            with self._changed:
                self._running -= 1
                self._last = time.monotonic()
                self._changed.notify_all()

    def stop(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._changed:
            self._stopping = True
            while time.monotonic() < deadline:
                idle = time.monotonic() - self._last
                if self._running == 0 and idle >= self.QUIET:
                    return
                self._changed.wait(max(self.QUIET - idle, 0.01))


# The one piece of process-wide state here, on purpose: interpreter exit is a
# process-wide event, and one guard covers every pipeline of the process.
_EXIT_GUARD = _GeneratorGuard()
atexit.register(_EXIT_GUARD.stop)


# The last line of the Python traceback that TensorFlow puts in the OpError's
# message: "kbert.errors.DataError: <message>" (the message runs to a blank line).
_QUOTED_ERROR = re.compile(r"^kbert\.errors\.(\w+): (.*?)(?=\n\s*\n|\n\t|\Z)", re.M | re.S)


def _quoted_error(message):
    """The kbert error quoted last in a TensorFlow error message, or None."""
    found = _QUOTED_ERROR.findall(message)
    if not found:
        return None
    name, text = found[-1]
    cls = getattr(kbert_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, KbertError)):
        return None
    return cls(text)


@contextlib.contextmanager
def data_errors():
    """Re-raise a `DataError` met while a `dynamic_dataset` was read (a bad line
    deep in the corpus), which TensorFlow reports as a `tf.errors.OpError`
    quoting it, as the `DataError` itself.

    The error is rebuilt from the `OpError`'s message (its class and text), so
    it is always the one that stopped this pipeline; other `OpError`s pass
    through unchanged.

    Examples:

    >>> with data_errors():
    ...     model.fit(dynamic_dataset("corpus/*.txt", tokenizer), steps_per_epoch=100)
    """
    try:
        yield
    except tf.errors.OpError as e:
        error = _quoted_error(e.message or "")
        if error is None:
            raise
        raise error from None


def _pad_chunk(instances, seq_len, pad_id):
    token_ids = np.full((len(instances), seq_len), pad_id, np.int32)
    segment_ids = np.zeros((len(instances), seq_len), np.int32)
    padding_mask = np.zeros((len(instances), seq_len), np.int32)
    for row, instance in enumerate(instances):
        n = len(instance["token_ids"])
        token_ids[row, :n] = instance["token_ids"]
        segment_ids[row, :n] = instance["segment_ids"]
        padding_mask[row, :n] = 1
    labels = np.array([i["nsp_label"] for i in instances], np.int32)
    return token_ids, segment_ids, padding_mask, labels


class _InstanceChunks:
    """The generator function of one dynamic dataset: each call is a new pass
    over the corpus, with its own stream of pairs, yielding padded chunks."""

    def __init__(self, files, tokenizer, config, seed, vocab, paragraphs, holdout, split):
        self.files = files
        self.tokenizer = tokenizer
        self.config = config
        self.seed = seed
        self.vocab = vocab
        self.paragraphs = paragraphs
        self.holdout = holdout
        self.split = split
        self.passes = 0

    def __call__(self):
        stream = self._chunks()
        while True:
            with _EXIT_GUARD.step() as running:
                item = next(stream, None) if running else None
            if item is None:
                return
            yield item

    def _chunks(self):
        rng = np.random.default_rng([self.seed, self.passes])
        self.passes += 1
        documents = iter_documents(self.files, self.paragraphs, self.holdout, self.split)
        tokenized = tokenize_documents(documents, self.tokenizer)
        stream = instance_stream(tokenized, self.config, rng, self.vocab)
        where = ", ".join(self.files)
        count = 0
        while True:
            try:
                chunk = list(itertools.islice(stream, CHUNK))
            except OneDocumentError as e:
                # A public class (`data_errors` rebuilds those) naming the files.
                raise DataError(f"{where}: {e}") from None
            if not chunk:
                break
            count += len(chunk)
            yield _pad_chunk(chunk, self.config.seq_len, self.vocab.pad_id)
        if not count:
            if self.split == "train":
                raise DataError(f"{where}: no text to make pre-training data from")
            raise DataError(f"{where}: no held-out documents to make pre-training data from (holdout "
                            f"{self.holdout} of too few documents: raise it, or use 0 to skip evaluation)")


def dynamic_dataset(
    paths,
    tokenizer,
    config=None,
    batch_size=32,
    seed=None,
    repeat=True,
    split_sentences=False,
    holdout=0.0,
    split="train",
    shuffle_buffer=1000,
):
    """Build instances on the fly and mask them in the `tf.data` graph.

    A Python generator streams the files through `create_instances` (one pass
    per epoch, each with new pairs); instances are shuffled through a buffer,
    padded into batches and masked with `mask_tokens_tf` in a parallel map.
    The masking seeds come from `tf.data.Dataset.random`, so every epoch (and
    every new iteration of the dataset) gets fresh masks while the whole stream
    is reproducible from `seed`. `config.dupe_factor` is not used: each epoch
    is a new duplicate.

    Args:
        paths: text files or glob patterns (see `read_documents`).
        tokenizer: a `kbert.BertTokenizer`.
        config: a `PretrainingConfig`.
        batch_size: int. Incomplete last batches are dropped.
        seed: seed of pairs, order and masks; None uses `config.seed`.
        repeat: repeat forever (use `steps_per_epoch` in `fit`).
        split_sentences, holdout, split: as for `read_documents`.
        shuffle_buffer: instances in the shuffle buffer.

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)` like `tfrecord_dataset`.

    Raises:
        DataError: a path is missing, empty or binary, or a pattern matches
            nothing. Errors met while reading (a bad line, no text at all)
            surface while iterating, as a `tf.errors` error quoting the
            `DataError` message; `data_errors()` turns them back into it.

    Examples:

    >>> ds = dynamic_dataset("corpus/*.txt", tokenizer, PretrainingConfig(), 32)
    >>> model.fit(ds, steps_per_epoch=1000, epochs=10)
    """
    config = config or PretrainingConfig()
    files = expand_paths(paths)
    check_split(holdout, split)
    check_batch_size(batch_size)
    seed = config.seed if seed is None else int(seed)
    vocab = Vocab(tokenizer)
    masking = MaskingSpec.from_tokenizer(vocab, config)
    chunks = _InstanceChunks(files, tokenizer, config, seed, vocab, split_sentences, holdout, split)

    matrix = tf.TensorSpec([None, config.seq_len], tf.int32)
    ds = tf.data.Dataset.from_generator(
        chunks, output_signature=(matrix, matrix, matrix, tf.TensorSpec([None], tf.int32))
    )
    ds = ds.unbatch().shuffle(shuffle_buffer, seed=seed)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    # One int64 per batch; a new sequence on every iteration of the dataset.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, seeds)
    word_start = tf.constant(vocab.word_start)

    def mask(batch, batch_seed):
        token_ids, segment_ids, padding_mask, nsp_label = batch
        masked = masking.mask_tf(
            token_ids,
            tf.stack([batch_seed, tf.constant(seed, tf.int64)]),
            tf.gather(word_start, token_ids) if config.whole_word_mask else None,
        )
        return to_keras({
            "token_ids": masked.token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
            "mask_positions": masked.mask_positions,
            "mask_ids": masked.mask_ids,
            "mask_weights": masked.mask_weights,
            "nsp_label": nsp_label,
        })

    ds = ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
