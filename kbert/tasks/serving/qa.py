"""Serving for extractive QA: `text` (questions) and `text_pair` (contexts) in,
the answer of each question out.

The algorithm of `QaTask.predict`, in the graph: the question cut to the
task's `max_query_length`, the context in `doc_stride` windows
(`BertTokenizer.pack_windows`), every window through the model, and the best
span over all windows by `kbert.tasks.qa.select_spans` with the task's
`max_answer_length`, SQuAD v2 null rule and threshold. So a long context is
answered from all of it, and the answer is `kbert.predict`'s.

Outputs (`[batch]` unless noted): `answer` (text; "" for no answer),
`answer_start` / `answer_end` (character offsets into `text_pair`, -1 for
""), `score` (the span's start + end logit, or the null score for ""),
`null_score`, `windows` (number of windows the context took), and
`start_logits` / `end_logits` `[batch, seq_len]` of each input's first window.
"""

from kbert.tasks.serving import text_specs


def serving_default(model, tokenizer, seq_len, task=None, labels=None, pair=True):
    import tensorflow as tf

    from kbert.tasks.qa import QaTask, select_spans

    task = task or QaTask()
    # The question must leave room for a context piece; `predict` refuses a
    # longer one (KbertError), a server cuts it.
    max_query_length = max(0, min(task.max_query_length, seq_len - 4))
    version_2 = bool(task.version_2)

    def answer(text, text_pair):
        question = tokenizer.tokenize(text)[:, :max_query_length]
        context, begin, end = tokenizer.tokenize_with_offsets(text_pair)
        windows = tokenizer.pack_windows(question, context, seq_len, task.doc_stride)
        out = model({k: windows[k] for k in ("token_ids", "segment_ids", "padding_mask")}, training=False)
        start_logits = tf.cast(out["start_logits"], tf.float32)
        end_logits = tf.cast(out["end_logits"], tf.float32)
        batch = tf.shape(text)[0]
        example = windows["example_index"]
        index = windows["context_index"]
        best = select_spans(start_logits, end_logits, windows["max_context"], index >= 0, example, batch,
                            task.max_answer_length, version_2, task.null_threshold)

        # Context pieces of the span, then their bytes and characters.
        first = tf.gather_nd(index, tf.stack([best["window"], best["start"]], axis=1))
        last = tf.gather_nd(index, tf.stack([best["window"], best["end"]], axis=1))
        found = best["found"]
        first, last = tf.where(found, first, 0), tf.where(found, last, 0)
        begin_d = begin.to_tensor(default_value=0)
        end_d = end.to_tensor(default_value=0)
        has_pieces = tf.shape(begin_d)[1] > 0
        byte_start = tf.cond(has_pieces, lambda: tf.gather(begin_d, first[:, None], batch_dims=1)[:, 0],
                             lambda: tf.zeros([batch], tf.int64))
        byte_end = tf.cond(has_pieces, lambda: tf.gather(end_d, last[:, None], batch_dims=1)[:, 0],
                           lambda: tf.zeros([batch], tf.int64))
        byte_start = tf.where(found, byte_start, -1)
        byte_end = tf.where(found, byte_end, -1)
        chars = tf.cast(tokenizer.char_offsets(text_pair, tf.stack([byte_start, byte_end], axis=1)), tf.int32)
        span = tf.strings.substr(text_pair, tf.maximum(byte_start, 0), tf.maximum(byte_end - byte_start, 0),
                                 unit="BYTE")
        first_window = tf.math.unsorted_segment_min(tf.range(tf.shape(example)[0]), example, batch)
        return {
            "answer": tf.where(found, span, ""),
            "answer_start": chars[:, 0],
            "answer_end": chars[:, 1],
            "score": best["score"],
            "null_score": best["null_score"],
            "windows": tf.math.bincount(example, minlength=batch, maxlength=batch),
            "start_logits": tf.gather(start_logits, first_window),
            "end_logits": tf.gather(end_logits, first_window),
        }

    return answer, text_specs(pair=True)
