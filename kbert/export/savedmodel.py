"""SavedModel for TF Serving: raw strings in, task outputs out.

Built with `keras.export.ExportArchive` (Keras 3's supported path to a
SavedModel) around the Keras model and kbert's in-graph tokenizer, so the
artifact needs only `tensorflow` and `tensorflow_text` to load and serve.

Signatures:
    serving_default: `text` (classify, ner), or `text` + `text_pair` (qa:
        question and context; classify models trained on pairs).
    ids: `token_ids`, `segment_ids`, `padding_mask` int32 `[batch, seq_len]`
        (pre-tokenized input), the model's raw outputs.

Outputs of serving_default per task:
    classify: `logits`, `probabilities` `[batch, classes]`, `label_ids`
        `[batch]`, `labels` (names); regression: `score` `[batch]`.
    ner: `logits` `[batch, seq_len, tags]`, `tags` (names) and `tag_ids`
        per token, `token_start`/`token_end` character offsets of each token
        in `text` (-1 for [CLS]/[SEP]/padding), `word_start` (1 at a word's
        first piece: the tag to read).
    qa: `start_logits`, `end_logits`, and the best span in the context:
        `answer_start`/`answer_end` (character offsets), `answer` (text),
        `score`.
"""

from kbert.tasks.base import INPUTS


def call_model(model, inputs):
    """The model's outputs on `inputs` as a dict of float32 tensors (`logits`
    for single-output models): what every exported signature returns."""
    import tensorflow as tf

    out = model(inputs, training=False)
    if not isinstance(out, dict):
        out = {"logits": out}
    return {k: tf.cast(v, tf.float32) for k, v in out.items()}


def serving_archive(model, tokenizer, task, labels, seq_len, pair=False, max_answer_length=30):
    """A `keras.export.ExportArchive` with the `serving_default` and `ids` endpoints."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    names = tf.constant([str(x) for x in (labels or [""])])

    ids_spec = {k: tf.TensorSpec([None, seq_len], tf.int32, name=k) for k in INPUTS}

    archive.add_endpoint("ids", lambda inputs: call_model(model, inputs), input_signature=[ids_spec])

    text_spec = tf.TensorSpec([None], tf.string, name="text")
    pair_spec = tf.TensorSpec([None], tf.string, name="text_pair")

    if task == "classify":
        def classify(inputs):
            logits = tf.cast(model(inputs, training=False), tf.float32)
            if not labels:
                return {"logits": logits, "score": logits[:, 0]}
            ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return {"logits": logits, "probabilities": tf.nn.softmax(logits), "label_ids": ids,
                    "labels": tf.gather(names, ids)}

        if pair:
            archive.add_endpoint("serving_default", lambda text, text_pair: classify(
                tokenizer(text, text_pair, seq_len=seq_len)), input_signature=[text_spec, pair_spec])
        else:
            archive.add_endpoint("serving_default", lambda text: classify(tokenizer(text, seq_len=seq_len)),
                                 input_signature=[text_spec])
    elif task == "ner":
        def tag(text):
            ids, begin, end = tokenizer.tokenize_with_offsets(text)
            inputs = tokenizer.pack([ids], seq_len)
            logits = tf.cast(model(inputs, training=False), tf.float32)
            tag_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
            start, stop = _token_offsets(text, begin, end, seq_len)
            words = tf.gather(tokenizer._is_word_start, tf.cast(inputs["token_ids"], tf.int64))
            real = start >= 0
            return {"logits": logits, "tag_ids": tag_ids, "tags": tf.gather(names, tag_ids),
                    "token_start": start, "token_end": stop,
                    "word_start": tf.cast(tf.logical_and(words, real), tf.int32)}

        archive.add_endpoint("serving_default", tag, input_signature=[text_spec])
    elif task == "qa":
        def answer(text, text_pair):
            question = tokenizer.tokenize(text)
            ids, begin, end = tokenizer.tokenize_with_offsets(text_pair)
            inputs = tokenizer.pack([question, ids], seq_len)
            out = model(inputs, training=False)
            s, e = tf.cast(out["start_logits"], tf.float32), tf.cast(out["end_logits"], tf.float32)
            # Context tokens sit after [CLS] question [SEP]; the packer trims
            # the question first only when it is the longer segment, so read
            # the kept lengths back from segment_ids.
            context_len = tf.reduce_sum(inputs["segment_ids"], axis=1) - 1
            first = tf.reduce_sum(inputs["padding_mask"], axis=1) - context_len - 1
            positions = tf.range(seq_len)[tf.newaxis, :]
            in_context = (positions >= first[:, None]) & (positions < (first + context_len)[:, None])
            neg = tf.constant(-1e9, tf.float32)
            s_m, e_m = tf.where(in_context, s, neg), tf.where(in_context, e, neg)
            scores = s_m[:, :, None] + e_m[:, None, :]
            band = tf.linalg.band_part(tf.ones([seq_len, seq_len]), 0, min(max_answer_length, seq_len) - 1) > 0
            scores = tf.where(band[None], scores, neg)
            flat = tf.argmax(tf.reshape(scores, [-1, seq_len * seq_len]), axis=-1, output_type=tf.int32)
            best_s, best_e = flat // seq_len, flat % seq_len
            piece_s, piece_e = best_s - first, best_e - first
            begin_d = begin.to_tensor(default_value=-1)
            end_d = end.to_tensor(default_value=-1)
            byte_s = tf.cast(tf.gather(begin_d, tf.maximum(piece_s, 0), batch_dims=1), tf.int32)
            byte_e = tf.cast(tf.gather(end_d, tf.maximum(piece_e, 0), batch_dims=1), tf.int32)
            has = context_len > 0
            byte_s, byte_e = tf.where(has, byte_s, 0), tf.where(has, byte_e, 0)
            text_out = tf.strings.substr(text_pair, byte_s, byte_e - byte_s, unit="BYTE")
            char_s = _chars_before(text_pair, byte_s[:, None])[:, 0]
            char_e = _chars_before(text_pair, byte_e[:, None])[:, 0]
            return {"start_logits": s, "end_logits": e, "answer_start": char_s, "answer_end": char_e,
                    "answer": tf.where(has, text_out, ""),
                    "score": tf.reduce_max(tf.reshape(scores, [-1, seq_len * seq_len]), axis=-1)}

        archive.add_endpoint("serving_default", answer, input_signature=[text_spec, pair_spec])
    else:  # encoder / pretrain: the encoder's outputs for text
        def encode(text):
            return call_model(model, tokenizer(text, seq_len=seq_len))

        archive.add_endpoint("serving_default", encode, input_signature=[text_spec])
    return archive


def _chars_before(text, byte_offsets):
    """Character (Unicode code point) offsets of byte offsets `[batch, n]`
    into `text` `[batch]`; negative offsets stay -1."""
    import tensorflow as tf

    shape = tf.shape(byte_offsets)
    strings = tf.broadcast_to(text[:, None], shape)
    chars = tf.strings.length(tf.strings.substr(strings, tf.zeros_like(byte_offsets), tf.maximum(byte_offsets, 0), unit="BYTE"),
                              unit="UTF8_CHAR")
    return tf.where(byte_offsets >= 0, chars, -1)


def _token_offsets(text, begin, end, seq_len):
    """Per packed position, the character range of its token (truncated as in
    `pack`), -1 for [CLS], [SEP] and padding."""
    import tensorflow as tf

    keep = seq_len - 2
    begin = begin[:, :keep].to_tensor(default_value=-1, shape=[None, keep])
    end = end[:, :keep].to_tensor(default_value=-1, shape=[None, keep])
    pad = tf.fill([tf.shape(begin)[0], 1], tf.constant(-1, begin.dtype))
    begin = tf.concat([pad, begin, pad], axis=1)
    end = tf.concat([pad, end, pad], axis=1)[:, :seq_len]
    begin = begin[:, :seq_len]
    return _chars_before(text, tf.cast(begin, tf.int32)), _chars_before(text, tf.cast(end, tf.int32))

