import numpy as np
import pytest

from kbert.data.pretraining import PretrainingConfig, create_instances, read_documents, truncate_pair
from kbert.errors import DataError

from .helpers import contains, write


def google_truncate(a, b, max_tokens, rng):
    """Google's truncate_seq_pair, verbatim (lists)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        trunc = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()
    return a, b


def test_truncate_pair_matches_google():
    rng = np.random.default_rng(0)
    for _ in range(500):
        la, lb, limit = rng.integers(1, 60), rng.integers(1, 60), rng.integers(2, 80)
        a, b = np.arange(la), 1000 + np.arange(lb)
        ta, tb = truncate_pair(a, b, limit, rng)
        ga, gb = google_truncate(a, b, limit, rng)
        assert (len(ta), len(tb)) == (len(ga), len(gb))
        assert contains(a, ta) and contains(b, tb)  # contiguous: cut at the ends only
    # Front and back cuts are equally likely.
    fronts = [truncate_pair(np.arange(50), np.arange(10), 40, rng)[0][0] for _ in range(2000)]
    assert 9.7 < np.mean(fronts) < 10.3  # A loses 20 tokens; Binomial(20, 0.5) from the front


def test_instance_layout(tok, sample_instances):
    config = PretrainingConfig()
    starts = np.array([not t.startswith("##") for t in tok.vocab])
    assert len(sample_instances) > 2000
    for inst in sample_instances:
        ids, seg = inst["token_ids"], inst["segment_ids"]
        assert ids.dtype == np.int32 and len(ids) <= config.seq_len
        sep = np.flatnonzero(ids == tok.sep_id)
        assert ids[0] == tok.cls_id and len(sep) == 2 and sep[1] == len(ids) - 1
        assert 1 < sep[0] < sep[1] - 1  # A and B are non-empty
        assert tok.cls_id not in ids[1:] and tok.pad_id not in ids
        np.testing.assert_array_equal(seg, (np.arange(len(ids)) > sep[0]).astype(np.int32))
        np.testing.assert_array_equal(inst["word_starts"], starts[ids])


def test_segments_come_from_their_documents(sample_instances, sample_docs):
    full_untruncated = 0
    for inst in sample_instances:
        ids = inst["token_ids"]
        sep = np.flatnonzero(ids == ids[-1])[0]
        a, b = ids[1:sep], ids[sep + 1:-1]
        assert contains(sample_docs[inst["a_doc"]], a)
        assert contains(sample_docs[inst["b_doc"]], b)
        if inst["nsp_label"] == 1:
            assert inst["b_doc"] != inst["a_doc"]
        else:
            assert inst["b_doc"] == inst["a_doc"]
            if len(ids) < 128:  # not truncated: B is A's true continuation
                assert contains(sample_docs[inst["a_doc"]], np.concatenate([a, b]))
                full_untruncated += 1
    assert full_untruncated > 100


def test_negatives_come_from_the_bounded_buffer(tok, sample):
    config = PretrainingConfig(negatives_buffer=8)
    rng = np.random.default_rng(1)
    instances = list(create_instances(read_documents(sample), tok, config, rng))
    offsets = [i["b_doc"] - i["a_doc"] for i in instances if i["nsp_label"] == 1]
    assert 0 not in offsets
    assert max(map(abs, offsets)) < 8
    assert min(offsets) < 0 < max(offsets)  # the window reaches both ways


def test_nsp_labels_and_short_sequences(tok, sample, sample_instances):
    def instances(**overrides):
        config = PretrainingConfig(**overrides)
        return list(create_instances(read_documents(sample), tok, config, np.random.default_rng(2)))

    # One-sentence chunks always get a random B (Google's rule), so label 1 is
    # a little above random_next_prob; `forced` measures how much.
    forced = np.mean([i["nsp_label"] for i in instances(random_next_prob=0.0)])
    assert 0 < forced < 0.2
    observed = np.mean([i["nsp_label"] for i in sample_instances])
    assert abs(observed - (forced + (1 - forced) * 0.5)) < 0.04

    long_ = [len(i["token_ids"]) for i in instances(short_seq_prob=0.0)]
    short = [len(i["token_ids"]) for i in instances(short_seq_prob=1.0)]
    default = [len(i["token_ids"]) for i in sample_instances]
    assert np.mean(short) < 0.6 * np.mean(long_)
    assert np.mean(short) < np.mean(default) < np.mean(long_)
    assert np.mean(np.array(long_) == 128) > 0.6


def test_one_document_is_an_error(tmp_path, tok):
    # The TFRecord and dynamic-dataset tests check that their errors name the file.
    one = write(tmp_path / "one.txt", "A sentence.\nAnother one.\n")
    with pytest.raises(DataError, match="only one document"):
        list(create_instances(read_documents(one), tok))
