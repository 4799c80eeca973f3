"""The SavedModel's endpoints run a large request in fixed-size chunks (bounded
memory, #15) and answer exactly as one unchunked batch would."""

import numpy as np
import pytest

from training.test_finetune import encoder_dir  # noqa: F401
from kbert.export.savedmodel import serving_archive
from kbert.model_dir import load_model, read_model_dir, save_model
from kbert.tasks import get_task, registry

WORDS = "the film was good bad nice plot and very movie".split()


def _texts(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 40))) for _ in range(n)]


def _served(tmp_path, name, model, info, task, labels, seq_len, pair, chunk):
    import tensorflow as tf

    path = str(tmp_path / name)
    serving_archive(model, info.tokenizer(), task, labels, seq_len, pair=pair, chunk=chunk).write_out(
        path, verbose=False)
    return tf.saved_model.load(path).signatures


@pytest.mark.parametrize("task_name", ["classify", "ner", "qa"])
def test_chunked_endpoints_equal_one_batch(tmp_path, encoder_dir, task_name):  # noqa: F811
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    labels = {"classify": ["neg", "pos"], "ner": ["O", "B-X", "I-X"], "qa": None}[task_name]
    model = registry.spec(task_name).build(load_model(encoder_dir), num_labels=len(labels) if labels else None)
    # QA: contexts long enough for several windows each, so chunks split a
    # request between texts, never inside one text's windows.
    seq_len, task = (32, get_task("qa", doc_stride=8)) if task_name == "qa" else (16, get_task(task_name))
    save_model(model, tmp_path / "model", vocab=read_model_dir(encoder_dir).vocab, seq_len=seq_len,
               labels=labels, task_options=task.options())
    info = read_model_dir(tmp_path / "model")
    pair = task_name == "qa"
    chunked = _served(tmp_path, "chunked", model, info, task, labels, seq_len, pair, chunk=4)
    whole = _served(tmp_path, "whole", model, info, task, labels, seq_len, pair, chunk=None)

    for n in (0, 1, 4, 11):  # empty, one, exactly one chunk, 2 full chunks + a remainder
        feed = {"text": tf.constant(_texts(n, n), dtype=tf.string)}
        if pair:
            feed["text_pair"] = tf.constant(_texts(n, 100 + n), dtype=tf.string)
        a, b = chunked["serving_default"](**feed), whole["serving_default"](**feed)
        assert sorted(a) == sorted(b)
        for k in a:
            assert a[k].shape[0] == n, (k, a[k].shape)
            if a[k].dtype == tf.string:
                assert a[k].numpy().tolist() == b[k].numpy().tolist(), k
            else:
                np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-5, err_msg=k)
        if pair:
            assert n < 4 or int(tf.reduce_max(a["windows"])) > 1

    ids = {k: tf.constant(np.random.default_rng(1).integers(1, 10, size=(9, seq_len)), dtype=tf.int32)
           for k in ("token_ids",)}
    ids.update(segment_ids=tf.zeros([9, seq_len], tf.int32), padding_mask=tf.ones([9, seq_len], tf.int32))
    a, b = chunked["ids"](**ids), whole["ids"](**ids)
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-5, err_msg=k)
