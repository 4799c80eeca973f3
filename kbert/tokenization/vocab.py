"""WordPiece vocabulary files (plain Python, so model directories and checkpoints
load on any Keras backend without TensorFlow)."""

import os

from kbert.errors import DataError
from kbert.io import iter_text_lines

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Hugging Face's WordPiece `max_input_chars_per_word`.
MAX_CHARS_PER_WORD = 100
WORDPIECE_SUFFIX = "##"


def load_vocab(path):
    """Read a WordPiece vocabulary: one token per line, id = line number - 1.

    This is the `vocab.txt` format of Google's BERT and Hugging Face.

    Args:
        path: str or path-like. The vocabulary file.

    Returns:
        The tokens, in file order.

    Raises:
        DataError: the file is missing, empty, binary or not UTF-8, a line is
            empty, a token appears twice, or a special token is missing.
    """
    path = os.fspath(path)
    tokens = [line for _, line in iter_text_lines(path)]
    _check_vocab(tokens, lambda i: f"{path}:{i + 1}", path, DataError)
    return tokens


def _check_vocab(tokens, where, name, error):
    seen = {}
    for i, token in enumerate(tokens):
        if not token:
            raise error(f"{where(i)}: empty token")
        if token in seen:
            raise error(
                f"{where(i)}: duplicate token {token!r} (first at {where(seen[token])})"
            )
        seen[token] = i
    for token in SPECIAL_TOKENS:
        if token not in seen:
            raise error(f"{name}: missing special token {token}")
