"""The in-graph BERT WordPiece tokenizer (see `kbert.tokenization`)."""

import os

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from kbert.errors import KbertError
from kbert.tokenization.normalize import clean_text, normalize_text
from kbert.tokenization.vocab import MAX_CHARS_PER_WORD, WORDPIECE_SUFFIX as _SUFFIX, _check_vocab, load_vocab

class BertTokenizer(tf.Module):
    """BERT WordPiece tokenizer built from TensorFlow ops only.

    Produces the same ids as Hugging Face's `BertTokenizerFast` with the same
    vocabulary and `do_lower_case`, except that literal special tokens in the
    text (e.g. "[MASK]") stay text, as in Google's BERT, and for characters
    whose Unicode properties differ between HF's and TensorFlow's Unicode
    versions.

    All methods but `encode` and the id/token converters are pure TF: they work
    eagerly, in `tf.data.Dataset.map` and in a `tf.function` saved with
    `tf.saved_model.save` (loading it needs only `import tensorflow_text`).

    Text inputs may be a Python string or list of strings, or a scalar or 1-D
    `tf.string` tensor. Bytes that are not valid UTF-8 never raise; they are
    dropped like U+FFFD.

    Args:
        vocab: a list of tokens or the path of a `vocab.txt` file. Must contain
            all of `SPECIAL_TOKENS`.
        lowercase: bool. Lowercase and strip accents, for uncased models.
        name: optional module name.

    Examples:

    >>> tokenizer = BertTokenizer("vocab.txt")
    >>> tokenizer.encode("Hello world!")
    [101, 7592, 2088, 999, 102]
    >>> tokenizer(["Hello world!"], ["How are you?"], seq_len=16)["token_ids"]
    >>> ds = tf.data.Dataset.from_tensor_slices(texts).batch(32)
    >>> ds = ds.map(lambda t: tokenizer(t, seq_len=128))
    """

    def __init__(self, vocab, lowercase=True, name=None):
        super().__init__(name=name)
        if isinstance(vocab, (str, os.PathLike)):
            tokens = load_vocab(vocab)
        else:
            tokens = [str(t) for t in vocab]
            _check_vocab(tokens, lambda i: f"vocab[{i}]", "vocab", KbertError)
        # Kept out of tf.Module's attribute tracking, which would wrap the list.
        self._tokens = self._no_dependency(tuple(tokens))
        self._ids = self._no_dependency({t: i for i, t in enumerate(tokens)})
        self.lowercase = bool(lowercase)
        self.vocab_size = len(tokens)
        self.pad_id = self._ids["[PAD]"]
        self.unk_id = self._ids["[UNK]"]
        self.cls_id = self._ids["[CLS]"]
        self.sep_id = self._ids["[SEP]"]
        self.mask_id = self._ids["[MASK]"]
        self._wordpiece = tf_text.FastBertTokenizer(
            vocab=tokens,
            suffix_indicator=_SUFFIX,
            # Long enough for any word of MAX_CHARS_PER_WORD characters; the
            # character limit itself is applied in _limit_word_length.
            max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
            token_out_type=tf.int64,
            unknown_token="[UNK]",
            # Our normalize_text already did HF's lowercasing and accent stripping.
            lower_case_nfd_strip_accents=False,
            support_detokenization=True,
        )
        starts = [not t.startswith(_SUFFIX) for t in tokens]
        chars = [len(t) - (0 if s else len(_SUFFIX)) for t, s in zip(tokens, starts)]
        self._is_word_start = tf.constant(starts, tf.bool)
        self._token_chars = tf.constant(chars, tf.int64)

    @property
    def vocab(self):
        """The tokens, indexed by id."""
        return list(self._tokens)

    def clean(self, text):
        """HF `BertTokenizer` text cleaning (see `clean_text`), in the graph."""
        return clean_text(self._as_strings(text))

    def tokenize(self, text):
        """Split text into wordpiece ids.

        Args:
            text: a string or 1-D batch of strings.

        Returns:
            int64 ids: a `tf.RaggedTensor` of shape `[batch, (tokens)]` for a
            batch, a 1-D `tf.Tensor` for a single string. No special tokens.
        """
        text = self._as_strings(text)
        if text.shape.rank == 0:
            return self._tokenize_batch(text[tf.newaxis])[0]
        return self._tokenize_batch(text)

    # The batch functions are compiled once: run eagerly, their many small
    # (mostly ragged) ops cost 10-50x more than the work itself.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def _tokenize_batch(self, text):
        ids = self._wordpiece.tokenize(normalize_text(text, self.lowercase))
        return self._limit_word_length(ids)[0]

    def tokenize_with_offsets(self, text):
        """Like `tokenize`, also returning where each token came from.

        Offsets are byte positions in the original input string, exact also
        where cleaning and normalization changed the text: `text[begin:end]`
        is what the token came from, e.g. the bytes of "Café" for `cafe`. When
        one character gives several tokens ("Ǆ" gives `d`, `##z`), each gets
        that character's range. Dropped characters (controls, U+FFFD, invalid
        bytes, stripped accents) are part of no token unless they sit inside
        one. The offsets match Hugging Face's `offset_mapping` (there in
        characters, here in bytes).

        Text is normalized one character at a time here, to keep track of
        positions. That gives the same ids as `tokenize` except in one case no
        real text has: a few rare-script spacing marks with a combining class
        (e.g. U+1D165) next to other marks, which NFD would reorder.

        Returns:
            A tuple `(ids, begin, end)` of int64 tensors shaped like `tokenize`'s
            result.
        """
        text = self._as_strings(text)
        if text.shape.rank == 0:
            ids, begin, end = self._tokenize_with_offsets_batch(text[tf.newaxis])
            return ids[0], begin[0], end[0]
        return self._tokenize_with_offsets_batch(text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def _tokenize_with_offsets_batch(self, text):
        chars, char_begin = tf.strings.unicode_split_with_offsets(
            text, "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        # Byte ranges of each character in the input: up to the next character,
        # or the end of the string (invalid bytes need not be 3 bytes long).
        char_begin_flat = tf.cast(char_begin.flat_values, tf.int64)
        next_begin = tf.concat([char_begin_flat[1:], [0]], axis=0)
        nonempty = char_begin.row_lengths() > 0
        char_end_flat = tf.tensor_scatter_nd_update(
            next_begin,
            tf.boolean_mask(char_begin.row_limits() - 1, nonempty)[:, tf.newaxis],
            tf.boolean_mask(tf.cast(tf.strings.length(text), tf.int64), nonempty),
        )

        pieces = normalize_text(chars.flat_values, self.lowercase)
        normalized = tf.strings.reduce_join(chars.with_flat_values(pieces), axis=-1)
        ids, begin, end = self._wordpiece.tokenize_with_offsets(normalized)
        ids, begin, end = self._limit_word_length(ids, begin, end)

        # Cumulative end of each character's normalized piece, counted across
        # the whole batch so that one sorted search serves every row.
        piece_end = tf.cumsum(tf.cast(tf.strings.length(pieces, "BYTE"), tf.int64))
        row_start = tf.concat([[0], piece_end], axis=0)
        row_start = tf.gather(row_start, chars.row_splits[:-1])
        token_row_start = tf.gather(row_start, ids.value_rowids())
        first_char = tf.searchsorted(
            piece_end, begin.flat_values + token_row_start, side="right"
        )
        last_char = tf.searchsorted(
            piece_end, end.flat_values + token_row_start, side="left"
        )
        begin = ids.with_flat_values(tf.gather(char_begin_flat, first_char))
        end = ids.with_flat_values(tf.gather(char_end_flat, last_char))
        return ids, begin, end

    def tokenize_with_char_offsets(self, text):
        """Like `tokenize_with_offsets`, with offsets in characters.

        `text[begin:end]` of a Python string is what the token came from (see
        `char_offsets` for what counts as a character). QA answers, NER words
        and the serving signatures all take their offsets from here.

        Returns:
            A tuple `(ids, begin, end)` of int64 tensors shaped like `tokenize`'s
            result.
        """
        text = self._as_strings(text)
        ids, begin, end = self.tokenize_with_offsets(text)
        return ids, self.char_offsets(text, begin), self.char_offsets(text, end)

    def char_offsets(self, text, byte_offsets):
        """Character offsets of byte offsets into `text`, in the graph.

        A character starts at every byte that is not a UTF-8 continuation byte
        (`10xxxxxx`): for valid UTF-8 these are Unicode code points, Python's
        `str` indices; a lone surrogate that Python encoded with
        "surrogatepass" counts as one character, as in Python.

        Args:
            text: a string or 1-D batch of strings.
            byte_offsets: int offsets, `[n]` for a single string, `[batch, n]`
                or ragged `[batch, (n)]` for a batch. Offsets past the end count
                the whole string.

        Returns:
            int64 character offsets shaped like `byte_offsets`; negative offsets
            (padding) give -1.
        """
        text = self._as_strings(text)
        single = text.shape.rank == 0
        if single:
            text = text[tf.newaxis]
        offsets = byte_offsets
        if not isinstance(offsets, tf.RaggedTensor):
            offsets = tf.convert_to_tensor(offsets)
            if single:
                offsets = offsets[tf.newaxis]
            if offsets.shape.rank != 2:
                raise KbertError(f"byte_offsets must be [batch, n] or ragged, got shape {offsets.shape}")
            chars = self._char_offsets_batch(text, tf.RaggedTensor.from_tensor(tf.cast(offsets, tf.int64)))
            chars = chars.to_tensor(shape=tf.shape(offsets, out_type=tf.int64))
        else:
            chars = self._char_offsets_batch(text, tf.cast(offsets, tf.int64))
        return chars[0] if single else chars

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string), tf.RaggedTensorSpec([None, None], tf.int64, 1)],
        autograph=False,
    )
    def _char_offsets_batch(self, text, offsets):
        # Characters before each byte position: a running count of the bytes
        # that start a character, over the strings zero-padded to one length.
        length = tf.maximum(tf.reduce_max(tf.strings.length(text)), 1)
        raw = tf.io.decode_raw(text, tf.uint8, fixed_length=length)
        starts = tf.cast(tf.not_equal(tf.bitwise.bitwise_and(raw, 0xC0), 0x80), tf.int64)
        before = tf.concat([tf.zeros_like(starts[:, :1]), tf.cumsum(starts, axis=1)], axis=1)
        flat = offsets.flat_values
        rows = offsets.value_rowids()
        at = tf.minimum(tf.maximum(flat, 0), tf.cast(tf.gather(tf.strings.length(text), rows), tf.int64))
        chars = tf.gather_nd(before, tf.stack([rows, at], axis=1))
        return offsets.with_flat_values(tf.where(flat >= 0, chars, -1))

    def word_starts(self, ids):
        """Whether each id starts a word: it is not a "##" continuation piece.

        A word is the piece that starts it and the "##" pieces after it, as
        the wordpiece step split it (special tokens count as words of their
        own; mask them out with the padding mask or offsets where needed).

        Args:
            ids: int ids of any shape, dense or ragged.

        Returns:
            A bool tensor shaped like `ids`.
        """
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self.word_starts, ids)
        return tf.gather(self._is_word_start, tf.cast(ids, tf.int64))

    def pack_windows(self, first, second, seq_len, stride):
        """Pack a short first segment with overlapping windows of a long second one.

        Google BERT's SQuAD layout (`run_squad.py` doc spans): every window is
        `[CLS] first [SEP] second[start:start + length] [SEP]` padded to
        `seq_len`; a window holds `seq_len - len(first) - 3` pieces of the
        second segment, and the next one starts `min(that, stride)` pieces
        further, until a window reaches the end (a second segment with no
        pieces still gets one window). A piece of the second segment has its
        "max context" in the window where `min(pieces left, pieces right) +
        0.01 * window length` is largest (the first such window on ties).

        Training data (`kbert.data.squad.encode_squad`) and the QA serving
        signature both get their windows from here.

        Args:
            first: ragged ids `[batch, (tokens)]` (e.g. questions, already cut
                to their maximum length). Each row must leave room for one
                piece of the second segment: `len(first) + 4 <= seq_len`.
            second: ragged ids `[batch, (tokens)]` (e.g. contexts).
            seq_len: int. Length of every window.
            stride: int >= 1. Distance between the starts of two windows.

        Returns:
            A dict with one row per window (windows of a batch row are
            consecutive, in order): the int32 `[windows, seq_len]` model inputs
            `token_ids`, `segment_ids`, `padding_mask`; `example_index` (int32
            `[windows]`, the batch row); `context_index` (int32 `[windows,
            seq_len]`, the index in `second` of the piece at each position, -1
            elsewhere); `max_context` (bool `[windows, seq_len]`).
        """
        seq_len, stride = int(seq_len), int(stride)
        if stride < 1:
            raise KbertError(f"stride: expected an integer >= 1, got {stride}")
        first, second = self._as_ragged_ids(first), self._as_ragged_ids(second)
        out = self._pack_windows_batch(first, second, tf.constant(seq_len, tf.int64), tf.constant(stride, tf.int64))
        return {k: tf.ensure_shape(v, [None] if k == "example_index" else [None, seq_len]) for k, v in out.items()}

    @tf.function(
        input_signature=[tf.RaggedTensorSpec([None, None], tf.int64, 1)] * 2 + [tf.TensorSpec([], tf.int64)] * 2,
        autograph=False,
    )
    def _pack_windows_batch(self, first, second, seq_len, stride):
        window = seq_len - first.row_lengths() - 3
        check = tf.debugging.assert_positive(window, message="the first segment leaves no room in seq_len")
        with tf.control_dependencies([check]):
            window = tf.identity(window)
        total = second.row_lengths()
        # Google's loop moves by min(window, stride) until a window reaches
        # the end, so the windows of a row are k * step for k < count.
        step = tf.minimum(window, stride)
        count = 1 + (tf.maximum(total - window, 0) + step - 1) // step
        example = tf.repeat(tf.range(tf.shape(count, out_type=tf.int64)[0]), count)
        start = tf.ragged.range(count).flat_values * tf.gather(step, example)
        length = tf.minimum(tf.gather(total, example) - start, tf.gather(window, example))

        # Pieces of the second segment in each window: their index in the row
        # (`position`) and in the flat values (`flat`).
        position = tf.ragged.range(start, start + length)
        pair_window = position.value_rowids()
        flat = position.flat_values + tf.gather(second.row_splits[:-1], tf.gather(example, pair_window))
        context = position.with_flat_values(tf.gather(second.flat_values, flat))

        # Max context: the best-scoring window of each piece, the first on ties.
        offset = position.flat_values - tf.gather(start, pair_window)
        size = tf.gather(length, pair_window)
        score = tf.cast(tf.minimum(offset, size - 1 - offset), tf.float64) + 0.01 * tf.cast(size, tf.float64)
        pieces = tf.shape(second.flat_values, out_type=tf.int64)[0]
        best = tf.math.unsorted_segment_max(score, flat, pieces)
        windows = tf.shape(example, out_type=tf.int64)[0]
        candidate = tf.where(tf.equal(score, tf.gather(best, flat)), pair_window, windows)
        best_window = tf.math.unsorted_segment_min(candidate, flat, pieces)
        is_max = tf.cast(tf.equal(pair_window, tf.gather(best_window, flat)), tf.int64)

        query = tf.gather(first, example)
        ids, segment_ids = tf_text.combine_segments([query, context], self.cls_id, self.sep_id)
        # The same layout carries each position's piece index and max-context flag.
        index, _ = tf_text.combine_segments([tf.ones_like(query) * -1, position], -1, -1)
        flags, _ = tf_text.combine_segments([tf.zeros_like(query), position.with_flat_values(is_max)], 0, 0)
        ids, mask = tf_text.pad_model_inputs(ids, seq_len, pad_value=self.pad_id)
        segment_ids, _ = tf_text.pad_model_inputs(segment_ids, seq_len)
        index, _ = tf_text.pad_model_inputs(index, seq_len, pad_value=-1)
        flags, _ = tf_text.pad_model_inputs(flags, seq_len)
        return {
            "token_ids": tf.cast(ids, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(mask, tf.int32),
            "example_index": tf.cast(example, tf.int32),
            "context_index": tf.cast(index, tf.int32),
            "max_context": tf.cast(flags, tf.bool),
        }

    def _limit_word_length(self, ids, begin=None, end=None):
        # HF replaces a word of more than MAX_CHARS_PER_WORD characters by one
        # [UNK]. A word is a token not starting with "##" plus the "##" tokens
        # after it, and its length is the sum of its pieces' lengths (a word the
        # op could not split is a single [UNK] already).
        flat = ids.flat_values
        start = tf.gather(self._is_word_start, flat)
        word = tf.cumsum(tf.cast(start, tf.int64)) - 1
        chars = tf.math.segment_sum(tf.gather(self._token_chars, flat), word)
        too_long = tf.gather(chars > MAX_CHARS_PER_WORD, word)
        keep = ids.with_flat_values(start | ~too_long)
        unk = start & too_long
        flat = tf.where(unk, tf.constant(self.unk_id, tf.int64), flat)
        ids = tf.ragged.boolean_mask(ids.with_flat_values(flat), keep)
        if begin is None:
            return ids, None, None
        # The [UNK] spans the whole word.
        word_end = tf.gather(tf.math.segment_max(end.flat_values, word), word)
        end = end.with_flat_values(tf.where(unk, word_end, end.flat_values))
        return ids, tf.ragged.boolean_mask(begin, keep), tf.ragged.boolean_mask(end, keep)

    def pack(self, segments, seq_len):
        """Build fixed-length BERT inputs from one or two tokenized segments.

        Gives `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, truncating the longer
        segment first (the second one on ties) like BERT's `_truncate_seq_pair`,
        then padding with `[PAD]`.

        Args:
            segments: a list of one or two ragged id tensors `[batch, (tokens)]`.
            seq_len: int. Length of the outputs, at least `len(segments) + 2`.

        Returns:
            A dict of int32 tensors `[batch, seq_len]`: `token_ids`,
            `segment_ids` (0 for `[CLS]`, A and its `[SEP]`; 1 for B and its
            `[SEP]`) and `padding_mask` (1 for real tokens, 0 for padding).
        """
        if isinstance(segments, (tf.Tensor, tf.RaggedTensor)):
            segments = [segments]
        segments = list(segments)
        if len(segments) not in (1, 2):
            raise KbertError(f"pack takes 1 or 2 segments, got {len(segments)}")
        seq_len = int(seq_len)
        if seq_len < len(segments) + 2:
            raise KbertError(
                f"seq_len {seq_len} is too small for {len(segments)} segment(s): "
                f"need at least {len(segments) + 2}"
            )
        segments = [self._as_ragged_ids(s) for s in segments]
        # seq_len goes in as a tensor so that one compiled graph serves all lengths.
        inputs = self._pack_batch(segments, tf.constant(seq_len, tf.int32))
        return {k: tf.ensure_shape(v, [None, seq_len]) for k, v in inputs.items()}

    @tf.function(reduce_retracing=True, autograph=False)
    def _pack_batch(self, segments, seq_len):
        # Round-robin allotment of the budget is what _truncate_seq_pair's
        # "pop from the longer" loop ends up with.
        budget = seq_len - len(segments) - 1
        segments = tf_text.RoundRobinTrimmer(budget).trim(segments)
        ids, segment_ids = tf_text.combine_segments(segments, self.cls_id, self.sep_id)
        ids, mask = tf_text.pad_model_inputs(ids, seq_len, pad_value=self.pad_id)
        segment_ids, _ = tf_text.pad_model_inputs(segment_ids, seq_len)
        return {
            "token_ids": tf.cast(ids, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(mask, tf.int32),
        }

    def __call__(self, text, text_pair=None, seq_len=128):
        """Tokenize and `pack` text (and an optional second text) in one step.

        Args:
            text: a string or 1-D batch of strings.
            text_pair: optional second segment, shaped like `text`.
            seq_len: int. Output length.

        Returns:
            The `pack` dict; each tensor is `[seq_len]` for a single string and
            `[batch, seq_len]` for a batch.
        """
        text = self._as_strings(text)
        single = text.shape.rank == 0
        segments = [self.tokenize(text[tf.newaxis] if single else text)]
        if text_pair is not None:
            text_pair = self._as_strings(text_pair)
            if text_pair.shape.rank != text.shape.rank:
                raise KbertError("text and text_pair must both be single strings or batches")
            segments.append(self.tokenize(text_pair[tf.newaxis] if single else text_pair))
        inputs = self.pack(segments, seq_len)
        if single:
            inputs = {k: v[0] for k, v in inputs.items()}
        return inputs

    def detokenize(self, ids):
        """Join wordpiece ids back into space-separated words (lossy).

        Case, accents and the spacing around punctuation are not restored.

        Args:
            ids: int ids, `[batch, (tokens)]` or `[tokens]` (tensors or lists).

        Returns:
            A `[batch]` string tensor, or a scalar one for `[tokens]`.
        """
        if isinstance(ids, (list, tuple)):
            ids = tf.ragged.constant(ids, tf.int64)
        return self._wordpiece.detokenize(ids)

    def encode(self, text, text_pair=None):
        """Ids of `[CLS] text [SEP]` (or with `text_pair [SEP]`), as a list.

        No truncation or padding; for debugging and tests.
        """
        ids = [self.cls_id] + self._ids_of(text) + [self.sep_id]
        if text_pair is not None:
            ids += self._ids_of(text_pair) + [self.sep_id]
        return ids

    def id_to_token(self, token_id):
        """The token string of one id."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise KbertError(f"token id {token_id} out of range [0, {self.vocab_size})")
        return self._tokens[token_id]

    def convert_ids_to_tokens(self, ids):
        """Token strings of a list (or 1-D array) of ids."""
        return [self.id_to_token(i) for i in np.asarray(ids).reshape(-1)]

    def _ids_of(self, text):
        if not isinstance(text, str):
            raise KbertError(f"encode takes a str, got {type(text).__name__}")
        return self.tokenize(text).numpy().tolist()

    def _as_strings(self, text):
        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank not in (0, 1):
            raise KbertError(
                f"text must be a string or a 1-D batch of strings, got shape {text.shape}"
            )
        return text

    @staticmethod
    def _as_ragged_ids(ids):
        if isinstance(ids, tf.RaggedTensor):
            return tf.cast(ids, tf.int64)
        ids = tf.convert_to_tensor(ids)
        if ids.shape.rank != 2:
            raise KbertError(f"segments must be [batch, (tokens)], got shape {ids.shape}")
        return tf.RaggedTensor.from_tensor(tf.cast(ids, tf.int64))
