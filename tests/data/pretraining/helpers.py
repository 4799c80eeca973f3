"""Helpers of the pre-training data tests: small corpora and masking checks."""

import gc
from pathlib import Path

import keras
import numpy as np

from kbert.data.pretraining import PretrainingConfig

SMALL = PretrainingConfig(seq_len=64, max_predictions_per_seq=10, negatives_buffer=50, seed=3)


def write(path, text, mode="w"):
    path = Path(path)
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def contains(haystack, needle):
    """Whether `needle` occurs contiguously in `haystack` (1-D int arrays)."""
    if len(needle) == 0:
        return True
    windows = np.lib.stride_tricks.sliding_window_view(haystack, len(needle))
    return bool((windows == needle).all(axis=1).any())


def vocab_words(tok, count):
    """`count` distinct single-token words: each marks one synthetic document."""
    words = [t for t in tok.vocab[2000:4000] if t.isalpha() and len(t) >= 3]
    return words[:count]


def word_corpus(tmp_path, words, name="words.txt"):
    # Document k is three sentences made only of word k (and a period).
    docs = ["\n".join(f"{w} {w} {w} {w}." for _ in range(3)) for w in words]
    return write(tmp_path / name, "\n\n".join(docs) + "\n")


def two_sentence_corpus(tmp_path, sample, count=64):
    # Documents of two short sentences, no random B, no short targets: the
    # instances are fixed ("[CLS] s1 [SEP] s2 [SEP]"), only masks can change.
    lines = [l.strip() for l in open(sample, encoding="utf-8") if 20 < len(l.strip()) < 120]
    docs = [f"{lines[2 * i]}\n{lines[2 * i + 1]}" for i in range(count)]
    return write(tmp_path / "pairs.txt", "\n\n".join(docs) + "\n")


def unmask(x, y):
    """The original token ids of a batch: masked ids with the targets put back.

    Unused prediction slots hold id 0, [PAD] in this vocabulary, which is never
    a target."""
    ids = np.array(x["token_ids"])
    positions, targets = np.asarray(x["mask_positions"]), np.asarray(y["mlm"])
    rows, slots = np.nonzero(targets)
    ids[rows, positions[rows, slots]] = targets[rows, slots]
    return ids


def batches(ds, count):
    """The first `count` batches of a dataset as NumPy, the iterator closed."""
    it = iter(ds)
    out = [keras.tree.map_structure(np.asarray, next(it)) for _ in range(count)]
    del it
    gc.collect()
    return out


def padded(instances, seq_len, pad_id):
    """Instances as a padded `[n, seq_len]` id matrix and its word starts."""
    ids = np.full((len(instances), seq_len), pad_id, np.int32)
    starts = np.zeros((len(instances), seq_len), bool)
    for row, inst in enumerate(instances):
        ids[row, :len(inst["token_ids"])] = inst["token_ids"]
        starts[row, :len(inst["token_ids"])] = inst["word_starts"]
    return ids, starts


def masking_stats(tok, special, ids, masked, positions, mask_ids, weights, starts=None):
    """Rates over real, non-special tokens; checks invariants along the way."""
    is_special = np.zeros(tok.vocab_size, bool)
    is_special[special] = True
    real = weights > 0
    # Real predictions come first, in increasing position order; padding is 0.
    assert np.all(real[:, :-1] | ~real[:, 1:])
    assert np.all(np.diff(positions, axis=1)[real[:, 1:]] > 0)
    assert not positions[~real].any() and not mask_ids[~real].any()
    np.testing.assert_array_equal(mask_ids[real], np.take_along_axis(ids, positions, 1)[real])
    selected = np.zeros(ids.shape, bool)
    rows = np.broadcast_to(np.arange(len(ids))[:, None], positions.shape)
    selected[rows[real], positions[real]] = True
    candidates = ~is_special[ids]
    assert not selected[~candidates].any()  # [CLS], [SEP], [PAD] never selected
    np.testing.assert_array_equal(masked[~selected], ids[~selected])
    if starts is not None:
        # A word (a start token and the "##" pieces after it) is all in or all out.
        previous = np.pad(candidates[:, :-1], [(0, 0), (1, 0)])
        word = np.cumsum(candidates & (starts | ~previous), axis=1)
        key = (word + np.arange(len(ids))[:, None] * ids.shape[1])[candidates]
        size = np.bincount(key)
        picked = np.bincount(key, weights=selected[candidates])
        assert np.all((picked == 0) | (picked == size))
        assert (size > 1).sum() > 100  # there were multi-piece words to split
    chosen, originals = masked[selected], ids[selected]
    return {
        "tokens": int(candidates.sum()),
        "selected": selected.sum() / candidates.sum(),
        "mask": np.mean(chosen == tok.mask_id),
        "random": np.mean((chosen != tok.mask_id) & (chosen != originals)),
        "kept": np.mean(chosen == originals),
        "per_row": selected.sum(axis=1),
        "selected_mask": selected,
    }


def check_rates(stats):
    assert stats["tokens"] >= 100_000
    assert abs(stats["selected"] - 0.15) < 0.005
    assert abs(stats["mask"] - 0.8) < 0.01
    assert abs(stats["random"] - 0.1) < 0.01
    assert abs(stats["kept"] - 0.1) < 0.01


def check_per_row(stats, ids, special, whole_word):
    # round(15%) of the selectable tokens, at least 1, at most 20; whole words
    # that no longer fit are skipped, so whole-word rows may fall short.
    n = (~np.isin(ids, special)).sum(axis=1)
    want = np.minimum(np.maximum(np.round(n * 0.15), 1), 20)
    if whole_word:
        assert np.all(stats["per_row"] <= want) and np.mean(stats["per_row"] == want) > 0.95
    else:
        np.testing.assert_array_equal(stats["per_row"], want)
