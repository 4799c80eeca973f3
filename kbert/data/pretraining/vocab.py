"""The id tables of a tokenizer that building and masking instances need.

Instances need `[CLS]`/`[SEP]` and which tokens start a word; masking needs
the reserved ids (never selected, never a random replacement) and `[MASK]`;
`write_tfrecords` records the vocabulary's size and hash so that data can be
checked against a model. `Vocab` computes these once per tokenizer, from its
token list, so that no stage scans the vocabulary per example. NumPy only.
"""

import hashlib

import numpy as np


def special_token_ids(tokenizer):
    """Ids of the reserved tokens, written `[...]`: `[PAD]`, `[UNK]`, `[CLS]`,
    `[SEP]`, `[MASK]` and e.g. `[unused0]`.

    They are never selected for prediction and never used as random
    replacements. (WordPiece splits off "[" as punctuation, so no token learned
    from text has this form.)

    Args:
        tokenizer: a `kbert.BertTokenizer` (anything with a `vocab` list).

    Returns:
        A sorted int32 array.

    Examples:

    >>> special_token_ids(tokenizer)[:5]
    array([0, 1, 2, 3, 4], dtype=int32)
    """
    ids = [
        i for i, t in enumerate(tokenizer.vocab)
        if len(t) > 2 and t.startswith("[") and t.endswith("]")
    ]
    return np.array(sorted(ids), np.int32)


class Vocab:
    """Id tables of one tokenizer.

    Attributes:
        size: number of tokens.
        cls_id, sep_id, pad_id, mask_id: the special tokens' ids.
        special_ids: sorted int32 ids of the reserved tokens
            (`special_token_ids`).
        word_start: bool `[size]`, True where a token does not start with "##"
            (what whole-word masking groups by).
        sha256: hash of the vocabulary as a `vocab.txt` (one token a line).
    """

    def __init__(self, tokenizer):
        tokens = tokenizer.vocab
        self.size = len(tokens)
        self.cls_id = tokenizer.cls_id
        self.sep_id = tokenizer.sep_id
        self.pad_id = tokenizer.pad_id
        self.mask_id = tokenizer.mask_id
        self.special_ids = special_token_ids(tokenizer)
        self.word_start = np.array([not t.startswith("##") for t in tokens])
        self.sha256 = hashlib.sha256("".join(t + "\n" for t in tokens).encode("utf-8")).hexdigest()
