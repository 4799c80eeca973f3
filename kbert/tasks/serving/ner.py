"""Serving for token tagging (NER).

Outputs per packed position of `text` (`[batch, seq_len]`): `logits`
(`[batch, seq_len, tags]`), `tag_ids` and `tags` (names), `token_start` /
`token_end` (character offsets of the token in `text`, -1 for [CLS], [SEP] and
padding) and `word_start` (1 at a word's first piece, the tag to read: the
words `kbert.predict` tags, see `kbert.tasks.ner.text_words`). A text longer
than `seq_len - 2` pieces is cut.
"""

from kbert.tasks.serving import text_specs


def serving_default(model, tokenizer, seq_len, task=None, labels=None, pair=False):
    import tensorflow as tf
    import tensorflow_text as tf_text

    names = tf.constant([str(x) for x in (labels or [""])])

    def tag(text):
        ids, begin, end = tokenizer.tokenize_with_char_offsets(text)
        inputs = tokenizer.pack([ids], seq_len)
        logits = tf.cast(model(inputs, training=False), tf.float32)
        tag_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        # The offsets in the packed layout (cut as `pack` cuts), -1 elsewhere.
        keep = seq_len - 2
        start, _ = tf_text.pad_model_inputs(
            tf_text.combine_segments([begin[:, :keep]], -1, -1)[0], seq_len, pad_value=-1)
        stop, _ = tf_text.pad_model_inputs(
            tf_text.combine_segments([end[:, :keep]], -1, -1)[0], seq_len, pad_value=-1)
        start, stop = tf.cast(start, tf.int32), tf.cast(stop, tf.int32)
        words = tokenizer.word_starts(inputs["token_ids"]) & (start >= 0)
        return {"logits": logits, "tag_ids": tag_ids, "tags": tf.gather(names, tag_ids),
                "token_start": start, "token_end": stop, "word_start": tf.cast(words, tf.int32)}

    return tag, text_specs()
