import numpy as np
import pytest
import tensorflow as tf

from kbert.data.pretraining import PretrainingConfig, data_errors, dynamic_dataset, read_documents
from kbert.errors import DataError

from .helpers import (
    SMALL,
    batches,
    check_rates,
    masking_stats,
    two_sentence_corpus,
    unmask,
    write,
)


def test_dynamic_dataset_masks_in_graph(tok, special, sample):
    config = PretrainingConfig(whole_word_mask=True)
    ds = dynamic_dataset(sample, tok, config, 64, seed=1, repeat=False)
    rows = {k: [] for k in ("ids", "masked", "pos", "mid", "w", "starts", "nsp", "pad")}
    starts_table = np.array([not t.startswith("##") for t in tok.vocab])
    for x, y, w in ds:
        ids = unmask(x, y)
        rows["ids"].append(ids)
        rows["masked"].append(np.asarray(x["token_ids"]))
        rows["pos"].append(np.asarray(x["mask_positions"]))
        rows["mid"].append(np.asarray(y["mlm"]))
        rows["w"].append(np.asarray(w["mlm"]))
        rows["starts"].append(starts_table[ids])
        rows["nsp"].append(np.asarray(y["nsp"]))
        rows["pad"].append(np.asarray(x["padding_mask"]))
    rows = {k: np.concatenate(v) for k, v in rows.items()}
    stats = masking_stats(tok, special, rows["ids"], rows["masked"], rows["pos"], rows["mid"],
                          rows["w"], starts=rows["starts"])
    check_rates(stats)
    np.testing.assert_array_equal(rows["pad"], rows["ids"] != tok.pad_id)
    assert 0.45 < rows["nsp"].mean() < 0.65


def test_dynamic_dataset_is_deterministic_with_fresh_masks_each_epoch(tok, sample, tmp_path):
    path = two_sentence_corpus(tmp_path, sample)
    config = PretrainingConfig(seq_len=96, random_next_prob=0.0, short_seq_prob=0.0)

    def epoch(ds):
        by_instance = {}
        for x, y, _ in ds:
            for row, ids in enumerate(unmask(x, y)):
                by_instance[ids.tobytes()] = np.asarray(x["mask_positions"][row]).tolist()
        return by_instance

    # No shuffling, so each epoch has the same instances in the same batches:
    # new masks can only come from new mask seeds.
    def make(seed, repeat=False):
        return dynamic_dataset(path, tok, config, 8, seed=seed, repeat=repeat, shuffle_buffer=1)

    ds = make(11)
    first, second = epoch(ds), epoch(ds)
    assert len(first) == 64 and first.keys() == second.keys()
    changed = sum(first[k] != second[k] for k in first)
    assert changed > 55  # fresh masks for (nearly) every instance

    assert epoch(make(11)) == first  # reproducible from the seed
    assert epoch(make(12)) != first

    # With repeat, consecutive epochs (8 batches each) differ as well.
    looped = batches(make(11, repeat=True), 16)
    masks = [b[0]["mask_positions"].tolist() for b in looped]
    ids = [unmask(b[0], b[1]).tolist() for b in looped]
    assert ids[:8] == ids[8:] and masks[:8] != masks[8:]


def test_dynamic_dataset_errors(tok, tmp_path):
    with pytest.raises(DataError, match="missing.txt: file not found"):
        dynamic_dataset(str(tmp_path / "missing.txt"), tok, SMALL, 8)
    blank = write(tmp_path / "blank.txt", "\n\n")
    with pytest.raises(tf.errors.OpError, match="blank.txt: no text"):
        batches(dynamic_dataset(blank, tok, SMALL, 8), 1)


# --- errors met while reading -----------------------------------------------------


def test_data_errors_gives_back_the_error_that_stopped_the_pipeline(tok, sample, tmp_path):
    # A bad line deep in the file (past what the up-front check reads): the
    # error surfaces while iterating.
    good = b"\n".join(open(sample, "rb").read().split(b"\n")[:600])
    bad = write(tmp_path / "bad.txt", good + b"\n\nfine\n\xff\xfe broken\n", "wb")
    with pytest.raises(DataError) as direct:
        list(read_documents(bad))
    with pytest.raises(DataError) as caught:
        with data_errors():
            for _ in dynamic_dataset(bad, tok, SMALL, 8, repeat=False):
                pass
    assert type(caught.value) is DataError
    assert str(caught.value) == str(direct.value)  # the same one line, file and line number
    assert caught.value.__suppress_context__  # no TensorFlow traceback chained to it

    blank = write(tmp_path / "blank.txt", "\n\n")
    with pytest.raises(DataError, match=r"^\S*blank.txt: no text to make pre-training data from$"):
        with data_errors():
            batches(dynamic_dataset(blank, tok, SMALL, 8), 1)


def test_one_document_error_names_the_file(tok, tmp_path):
    one = write(tmp_path / "one.txt", "A sentence.\nAnother one.\n")
    with pytest.raises(DataError, match="one.txt: the input has only one document"):
        with data_errors():
            batches(dynamic_dataset(one, tok, SMALL, 8), 1)


def test_data_errors_lets_other_errors_through(tok, tmp_path):
    # Another pipeline failed before; its error must not replace an unrelated one.
    blank = write(tmp_path / "blank.txt", "\n\n")
    with pytest.raises(tf.errors.OpError):
        batches(dynamic_dataset(blank, tok, SMALL, 8), 1)
    unrelated = tf.errors.InvalidArgumentError(None, None, "shapes do not match")
    with pytest.raises(tf.errors.InvalidArgumentError, match="shapes do not match"):
        with data_errors():
            raise unrelated
    with pytest.raises(ValueError, match="not an OpError"):
        with data_errors():
            raise ValueError("not an OpError")
