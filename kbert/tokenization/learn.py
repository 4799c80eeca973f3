"""Learning a WordPiece vocabulary from text files."""

import os

import tensorflow as tf

from kbert.errors import DataError, KbertError
from kbert.io import atomic_file, iter_text_lines
from kbert.tokenization.normalize import normalize_text
from kbert.tokenization.vocab import SPECIAL_TOKENS, WORDPIECE_SUFFIX as _SUFFIX

def learn_vocab(
    files,
    size,
    lowercase=True,
    strip_accents=None,
    reserved_tokens=SPECIAL_TOKENS,
    out=None,
    progress=True,
):
    """Learn a WordPiece vocabulary from UTF-8 text files.

    Uses keras-hub's `compute_word_piece_vocabulary` (tf-text's BERT vocabulary
    learner). Text is normalized exactly as `BertTokenizer` will normalize it.
    Blank lines are skipped.

    Args:
        files: a path or a list of paths to text files.
        size: int. Maximum vocabulary size, reserved tokens included. Small
            corpora give fewer tokens: besides single characters, the learner
            keeps only pieces seen at least 10 times. A size too small for all
            characters (and their "##" forms) cuts some, leaving words
            that become `[UNK]`.
        lowercase: bool. Lowercase the text (BERT uncased).
        strip_accents: bool. Strip accents; defaults to `lowercase`.
        reserved_tokens: tokens placed first, in this order. Must contain all of
            `SPECIAL_TOKENS`.
        out: optional path; the vocabulary is written there (one token per
            line), replacing the file only once it is complete.
        progress: bool. Show a progress bar over the input bytes.

    Returns:
        The vocabulary as a list of tokens.

    Examples:

    >>> vocab = learn_vocab(["corpus.txt"], size=8000, out="vocab.txt")
    >>> tokenizer = BertTokenizer(vocab)
    """
    import keras_hub
    import tqdm

    if isinstance(files, (str, os.PathLike)):
        files = [files]
    files = [os.fspath(f) for f in files]
    reserved_tokens = list(reserved_tokens)
    missing = [t for t in SPECIAL_TOKENS if t not in reserved_tokens]
    if missing:
        raise KbertError(f"reserved_tokens must include {', '.join(missing)}")
    if len(set(reserved_tokens)) != len(reserved_tokens):
        raise KbertError("reserved_tokens contains duplicates")
    if size <= len(reserved_tokens):
        raise KbertError(
            f"vocabulary size {size} must be larger than the {len(reserved_tokens)} "
            "reserved tokens"
        )
    if strip_accents is None:
        strip_accents = lowercase
    if not files:
        raise KbertError("no input files given")

    for path in files:  # a bad file fails here, before any progress output
        for _ in iter_text_lines(path):
            pass
    total = sum(os.path.getsize(f) for f in files)
    bar = tqdm.tqdm(
        total=total, unit="B", unit_scale=True, desc="learn vocab", disable=not progress
    )

    def read_lines():
        for path in files:
            for _, line in iter_text_lines(path):
                bar.update(len(line.encode("utf-8")) + 1)
                if line.strip():
                    yield line

    lines = read_lines()
    try:
        # Pull the first line here so that a bad or text-less first file fails
        # with a plain DataError before TensorFlow gets involved.
        first = next(lines, None)
    except DataError:
        bar.close()
        raise
    if first is None:
        bar.close()
        raise DataError(f"{', '.join(files)}: no text to learn a vocabulary from")
    failures = []

    def generate():
        yield first
        try:
            yield from lines
        except DataError as e:
            # tf.data re-raises generator exceptions as its own error type;
            # keep ours to re-raise it with its file:line message.
            failures.append(e)
            raise

    data = (
        tf.data.Dataset.from_generator(
            generate, output_signature=tf.TensorSpec([], tf.string)
        )
        .batch(1024)
        .map(lambda t: normalize_text(t, lowercase, strip_accents))
    )
    try:
        vocab = keras_hub.tokenizers.compute_word_piece_vocabulary(
            data,
            size,
            lowercase=False,
            strip_accents=False,
            suffix_indicator=_SUFFIX,
            reserved_tokens=reserved_tokens,
        )
    except Exception:
        if failures:
            raise failures[0] from None
        raise
    finally:
        bar.close()
    if out is not None:
        with atomic_file(out) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("".join(token + "\n" for token in vocab))
    return vocab

