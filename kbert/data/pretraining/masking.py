"""Masked-LM masking, in NumPy and in TensorFlow, from one `MaskingSpec`.

Google's rule: select `min(max_predictions_per_seq, max(1, round(n *
masked_lm_prob)))` of the `n` selectable tokens, optionally whole words at a
time (a word that no longer fits is skipped and smaller ones are still tried);
each selected token becomes `[MASK]` (80%), a random token (10%) or stays
(10%). Two implementations run it:

* `MaskingSpec.mask` (NumPy, one example): used when writing TFRecords, where
  the masks are fixed once with the same `numpy.random.Generator` as the pairs.
* `MaskingSpec.mask_tf` (TensorFlow ops, a batch): used in the dynamic
  dataset's parallel `tf.data` map. It draws with stateless random ops seeded
  per batch, so masks are reproducible however the map is scheduled; keras-hub's
  `MaskedLMMaskGenerator` (tf-text's `RandomItemSelector`) uses stateful random
  ops, which cannot be, and selects `ceil(rate * n)` items counting a whole word
  as one, which is not Google's rule.

Both read every setting (rates, caps, which ids are selectable, the pool of
random replacements, how words are grouped) from the same `MaskingSpec`, and
each rule that needs code in both languages is written twice side by side in
it, so the two cannot drift apart; the tests check that they agree.

Deliberate differences from Google's script: `n` counts the selectable tokens
(Google counts `[CLS]`/`[SEP]` too); reserved `[...]` tokens are never selected
and never used as random replacements (Google selects `[UNK]` and draws from the
whole vocabulary); a word piece right after `[CLS]`/`[SEP]` (left there by front
truncation) starts a word of its own (Google would glue it to the previous word,
across the `[SEP]`).
"""

import dataclasses
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kbert.data.pretraining.vocab import Vocab
from kbert.errors import KbertError


class MaskedTokens(NamedTuple):
    """The result of masking: the masked ids and the prediction targets."""

    token_ids: object  # masked ids, same shape as the input
    mask_positions: object  # int32 [..., max_predictions_per_seq], sorted, 0-padded
    mask_ids: object  # int32, the original ids at mask_positions, 0-padded
    mask_weights: object  # float32, 1 for real predictions, 0 for padding


@dataclasses.dataclass(frozen=True, eq=False)
class MaskingSpec:
    """Everything that masking decides, for both implementations.

    Build one per tokenizer and config (`from_tokenizer` or the constructor)
    and reuse it: it holds `[vocab_size]` tables.

    Args:
        config: a `PretrainingConfig` (`masked_lm_prob`,
            `max_predictions_per_seq`, `whole_word_mask`).
        vocab_size: int; random replacements are drawn from
            `range(vocab_size)` minus `special_ids`.
        special_ids: ids never selected or used as replacements (see
            `special_token_ids`).
        mask_id: the id of `[MASK]`.
        mask_rate: probability that a selected token becomes `[MASK]`.
        random_rate: probability that it becomes a random token (it stays
            unchanged with the rest, `1 - mask_rate - random_rate`).

    Examples:

    >>> spec = MaskingSpec.from_tokenizer(tokenizer, PretrainingConfig())
    >>> spec.mask(instance["token_ids"], np.random.default_rng(0)).mask_positions
    >>> spec.mask_tf(batch_ids, tf.constant([1, 2], tf.int64)).mask_positions
    """

    config: object
    vocab_size: int
    special_ids: np.ndarray
    mask_id: int
    mask_rate: float = 0.8
    random_rate: float = 0.1
    is_special: np.ndarray = dataclasses.field(init=False, repr=False)  # bool [vocab_size]
    replacements: np.ndarray = dataclasses.field(init=False, repr=False)  # int32 pool

    def __post_init__(self):
        vocab_size = int(self.vocab_size)
        special_ids = np.asarray(self.special_ids, np.int32).reshape(-1)
        if len(special_ids) and (special_ids.min() < 0 or special_ids.max() >= vocab_size):
            raise KbertError(f"special_ids: ids must be in [0, {vocab_size})")
        if not (0 <= self.mask_rate and 0 <= self.random_rate and self.mask_rate + self.random_rate <= 1):
            raise KbertError(
                f"mask_rate, random_rate: expected rates summing to at most 1, "
                f"got {self.mask_rate!r}, {self.random_rate!r}"
            )
        is_special = np.zeros(vocab_size, bool)
        is_special[special_ids] = True
        replacements = np.flatnonzero(~is_special).astype(np.int32)
        if not len(replacements):
            raise KbertError("special_ids: every token is special; nothing can be masked")
        set_ = object.__setattr__  # frozen: derived fields are set once, here
        set_(self, "vocab_size", vocab_size)
        set_(self, "special_ids", special_ids)
        set_(self, "is_special", is_special)
        set_(self, "replacements", replacements)

    @classmethod
    def from_tokenizer(cls, tokenizer, config, **rates):
        """The spec of a `kbert.BertTokenizer` (or a `Vocab` of one)."""
        vocab = tokenizer if isinstance(tokenizer, Vocab) else Vocab(tokenizer)
        return cls(config, vocab.size, vocab.special_ids, vocab.mask_id, **rates)

    # --- the rules, NumPy and TensorFlow side by side ---

    def num_to_predict(self, num_candidates):
        """NumPy: `min(max_predictions_per_seq, max(1, round(n * masked_lm_prob)), n)`."""
        # np.round rounds half to even, like tf.round below.
        num = np.maximum(np.round(num_candidates * self.config.masked_lm_prob), 1)
        return np.minimum(np.minimum(num, self.config.max_predictions_per_seq), num_candidates)

    def num_to_predict_tf(self, num_candidates):
        """`num_to_predict` for an int32 tensor."""
        num = tf.round(tf.cast(num_candidates, tf.float64) * self.config.masked_lm_prob)
        num = tf.minimum(tf.cast(tf.maximum(num, 1.0), tf.int32), self.config.max_predictions_per_seq)
        return tf.minimum(num, num_candidates)

    def group_starts(self, candidates, word_starts):
        """NumPy: where a selection group starts (1-D). Every candidate token
        without whole-word masking; else a candidate that starts a word, or
        follows a non-candidate (a piece right after `[SEP]`)."""
        if not self.config.whole_word_mask:
            return candidates
        if word_starts is None:
            raise KbertError("whole_word_mask needs word_starts")
        previous = np.concatenate([[False], candidates[:-1]])
        return candidates & (np.asarray(word_starts, bool) | ~previous)

    def group_starts_tf(self, candidates, word_starts):
        """`group_starts` for a `[batch, seq_len]` tensor."""
        if not self.config.whole_word_mask:
            return candidates
        if word_starts is None:
            raise KbertError("whole_word_mask needs word_starts")
        previous = tf.pad(candidates[:, :-1], [[0, 0], [1, 0]])
        return candidates & (tf.cast(word_starts, tf.bool) | ~previous)

    def replace(self, draw, ids, random_ids):
        """NumPy: `[MASK]`, a random id or the original, by a uniform `draw`."""
        keep_from = self.mask_rate + self.random_rate
        return np.where(draw < self.mask_rate, self.mask_id, np.where(draw < keep_from, random_ids, ids))

    def replace_tf(self, draw, ids, random_ids):
        """`replace` for tensors."""
        keep_from = self.mask_rate + self.random_rate
        return tf.where(draw < self.mask_rate, self.mask_id, tf.where(draw < keep_from, random_ids, ids))

    # --- the two implementations ---

    def mask(self, token_ids, rng, word_starts=None):
        """Mask one example with NumPy (see `mask_tokens`)."""
        ids = np.asarray(token_ids)
        candidates = ~self.is_special[ids]
        starts = self.group_starts(candidates, word_starts)
        num = int(self.num_to_predict(int(candidates.sum())))

        word_of = np.cumsum(starts) - 1  # the group each candidate token is in
        lengths = np.bincount(word_of[candidates], minlength=int(starts.sum()))
        chosen = np.zeros(len(lengths), bool)
        count = 0
        for word in rng.permutation(len(lengths)):
            if count >= num:
                break
            if count + lengths[word] > num:
                continue  # Google skips a word that would overshoot
            chosen[word] = True
            count += lengths[word]
        selected = candidates & chosen[np.maximum(word_of, 0)]
        positions = np.flatnonzero(selected)

        pool = self.replacements
        draw = rng.random(len(positions))
        random_ids = pool[rng.integers(len(pool), size=len(positions))]
        originals = ids[positions]
        masked = ids.copy()
        masked[positions] = self.replace(draw, originals, random_ids)
        width = self.config.max_predictions_per_seq
        out = MaskedTokens(
            masked, np.zeros(width, np.int32), np.zeros(width, np.int32), np.zeros(width, np.float32)
        )
        out.mask_positions[:len(positions)] = positions
        out.mask_ids[:len(positions)] = originals
        out.mask_weights[:len(positions)] = 1.0
        return out

    def mask_tf(self, token_ids, seed, word_starts=None):
        """Mask a batch with TensorFlow ops (see `mask_tokens_tf`)."""
        ids = tf.convert_to_tensor(token_ids, tf.int32)
        candidates = ~tf.gather(tf.constant(self.is_special), ids)
        starts = self.group_starts_tf(candidates, word_starts)
        seeds = tf.random.experimental.stateless_split(seed, 4)

        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        num = self.num_to_predict_tf(tf.reduce_sum(tf.cast(candidates, tf.int32), axis=1))

        # Group g of a row is its g-th word; lengths[b, g] counts its tokens.
        word_of = tf.maximum(tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1, 0)
        num_words = tf.reduce_sum(tf.cast(starts, tf.int32), axis=1)
        segments = word_of + length * tf.range(batch)[:, tf.newaxis]
        lengths = tf.math.unsorted_segment_sum(
            tf.cast(candidates, tf.int32), segments, batch * length
        )
        lengths = tf.reshape(lengths, [batch, length])
        is_word = tf.range(length)[tf.newaxis, :] < num_words[:, tf.newaxis]

        # Visit words in random order: sort random keys, non-words last.
        keys = tf.random.stateless_uniform([batch, length], seeds[0])
        order = tf.argsort(tf.where(is_word, keys, 2.0), axis=1, stable=True)
        sorted_lengths = tf.gather(lengths, order, batch_dims=1)
        sorted_valid = tf.gather(is_word, order, batch_dims=1)
        chosen_sorted = greedy_select(sorted_lengths, sorted_valid, num)
        chosen = tf.gather(chosen_sorted, tf.argsort(order, axis=1), batch_dims=1)
        selected = candidates & tf.gather(chosen, word_of, batch_dims=1)

        positions = tf.ragged.boolean_mask(
            tf.broadcast_to(tf.range(length), [batch, length]), selected
        )
        shape = [None, self.config.max_predictions_per_seq]
        mask_positions = positions.to_tensor(0, shape=shape)
        mask_weights = tf.ones_like(positions, tf.float32).to_tensor(0.0, shape=shape)
        mask_ids = tf.gather(ids, mask_positions, batch_dims=1) * tf.cast(mask_weights, tf.int32)

        pool = tf.constant(self.replacements)
        draw = tf.random.stateless_uniform([batch, length], seeds[1])
        random_ids = tf.gather(
            pool,
            tf.random.stateless_uniform(
                [batch, length], seeds[2], 0, int(pool.shape[0]), dtype=tf.int32
            ),
        )
        masked = tf.where(selected, self.replace_tf(draw, ids, random_ids), ids)
        return MaskedTokens(masked, mask_positions, mask_ids, mask_weights)


def greedy_select(lengths, valid, num):
    """Google's loop "for each word: take it if it still fits", vectorized.

    Each round takes the longest run of open words (in order) whose total
    fits, then closes every open word longer than what is left: they can never
    fit, since what is left only shrinks. The first open word after the run is
    among them, so every round makes progress; it ends in at most 1 + the
    longest word's length rounds (2 for single tokens).

    Args:
        lengths: int32 `[batch, words]`, the words' lengths in visiting order.
        valid: bool `[batch, words]`, False for padding words.
        num: int32 `[batch]`, how many tokens each row may take.

    Returns:
        bool `[batch, words]`: the words taken.
    """

    def more(count, closed, chosen):
        return tf.reduce_any(valid & ~closed)

    def step(count, closed, chosen):
        open_ = valid & ~closed
        left = (num - count)[:, tf.newaxis]
        total = tf.cumsum(tf.where(open_, lengths, 0), axis=1)
        take = open_ & (total <= left)
        count += tf.reduce_sum(tf.where(take, lengths, 0), axis=1)
        left = (num - count)[:, tf.newaxis]
        closed |= take | (open_ & (lengths > left))
        return count, closed, chosen | take

    _, _, chosen = tf.while_loop(
        more, step, (tf.zeros_like(num), tf.zeros_like(valid), tf.zeros_like(valid))
    )
    return chosen


def mask_tokens(token_ids, config, rng, vocab_size, special_ids, mask_id, word_starts=None):
    """Select tokens to predict and mask them, Google's way (NumPy).

    Selects `min(max_predictions_per_seq, max(1, round(n * masked_lm_prob)))`
    of the `n` selectable tokens (all but `special_ids`). With
    `config.whole_word_mask`, words are taken whole in random order; a word
    that no longer fits under that number is skipped and smaller ones are
    still tried, as in Google's code. Each selected token becomes `[MASK]`
    with probability 0.8, a random non-special token with 0.1, and stays
    unchanged with 0.1.

    This builds a `MaskingSpec` per call; to mask many examples, build one
    and call its `mask`.

    Args:
        token_ids: 1-D int array, e.g. an instance's `token_ids` (padding
            allowed if the pad id is in `special_ids`).
        config: a `PretrainingConfig`.
        rng: a `numpy.random.Generator`.
        vocab_size: int; random replacements are drawn from
            `range(vocab_size)` minus `special_ids`.
        special_ids: ids never selected or used as replacements (see
            `special_token_ids`).
        mask_id: the id of `[MASK]`.
        word_starts: bool array like `token_ids`: True where a token starts a
            word (does not start with "##"). Required for whole-word masking.
            A piece right after a special token starts a group of its own.

    Returns:
        A `MaskedTokens` of NumPy arrays; the prediction arrays have length
        `max_predictions_per_seq`.

    Examples:

    >>> rng = np.random.default_rng(0)
    >>> out = mask_tokens(instance["token_ids"], config, rng, tokenizer.vocab_size,
    ...                   special_token_ids(tokenizer), tokenizer.mask_id,
    ...                   instance["word_starts"])
    >>> out.mask_positions, out.mask_ids, out.mask_weights
    """
    spec = MaskingSpec(config, vocab_size, special_ids, mask_id)
    return spec.mask(token_ids, rng, word_starts)


def mask_tokens_tf(token_ids, config, seed, vocab_size, special_ids, mask_id, word_starts=None):
    """`mask_tokens` for a batch, in TensorFlow ops (for `tf.data` maps).

    Same selection rule and 80/10/10 replacement as `mask_tokens`, drawn with
    stateless random ops, so the result depends only on the inputs and `seed`
    (reproducible in a parallel map). The greedy whole-word selection, a
    sequential loop in Google's code, runs as a few vectorized rounds (see
    `greedy_select`); each round gives exactly what the loop would.

    Args:
        token_ids: int32 `[batch, seq_len]`, padded with an id in `special_ids`.
        config: a `PretrainingConfig`.
        seed: int tensor of shape `[2]`, the stateless random seed.
        vocab_size, special_ids, mask_id: as for `mask_tokens`.
        word_starts: bool `[batch, seq_len]`, needed with `whole_word_mask`.

    Returns:
        A `MaskedTokens` of tensors: int32 `[batch, seq_len]` masked ids, and
        `[batch, max_predictions_per_seq]` positions, ids and float32 weights.

    Examples:

    >>> out = mask_tokens_tf(batch_ids, config, tf.constant([1, 2], tf.int64),
    ...                      tokenizer.vocab_size, special_token_ids(tokenizer),
    ...                      tokenizer.mask_id)
    """
    spec = MaskingSpec(config, vocab_size, special_ids, mask_id)
    return spec.mask_tf(token_ids, seed, word_starts)
