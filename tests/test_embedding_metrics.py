"""Retrieval and pair metrics of embeddings: hand-computed cases, ties, and
scikit-learn's ROC AUC when it is installed."""

import math

import numpy as np
import pytest

from kbert.embedding_metrics import (
    cosine_top_k,
    pair_metrics,
    ranking_metrics,
    retrieval_metrics,
    roc_auc,
    similarity_metrics,
)
from kbert.errors import KbertError


def test_cosine_top_k_orders_by_cosine_and_breaks_ties_by_index():
    corpus = np.array([[1, 0], [0, 1], [1, 1], [2, 0], [-1, 0]], np.float32)  # rows 0 and 3: the same direction
    queries = np.array([[1, 0], [0, 3]], np.float32)
    indices, scores = cosine_top_k(queries, corpus, k=3)
    assert indices.tolist() == [[0, 3, 2], [1, 2, 0]]
    np.testing.assert_allclose(scores, [[1, 1, math.sqrt(0.5)], [1, math.sqrt(0.5), 0]], atol=1e-6)
    # Chunks of one query and k past the corpus give the same.
    again, _ = cosine_top_k(queries, corpus, k=10, chunk=1)
    assert again.shape == (2, 5) and again[:, :3].tolist() == indices.tolist()
    with pytest.raises(KbertError, match="queries have 3 dimensions, the corpus 2"):
        cosine_top_k(np.ones((1, 3)), corpus)


def test_ranking_metrics_by_hand():
    ranked = [[4, 0, 1], [2, 3, 1], [5, 6, 7]]
    relevant = [(0,), (2, 1), (9,)]
    m = ranking_metrics(ranked, relevant, ks=(1, 3), mrr_k=3, ndcg_k=3)
    assert m["recall@1"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert m["recall@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    ideal_two = 1 + 1 / math.log2(3)
    ndcg = (1 / math.log2(3)) + (1 + 1 / math.log2(4)) / ideal_two
    assert m["ndcg@3"] == pytest.approx(ndcg / 3)
    with pytest.raises(KbertError, match="without relevant documents"):
        ranking_metrics([[0]], [()])


def test_retrieval_metrics_from_vectors():
    docs = np.eye(4, dtype=np.float32)
    queries = np.array([[0.9, 0.1, 0, 0], [0, 0.2, 0.9, 0], [0.1, 0, 0, 0.05]], np.float32)
    m = retrieval_metrics(queries, docs, [(0,), (1,), (3,)])
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@10"] == 1.0
    assert m["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)


def test_pair_metrics_best_threshold_never_splits_ties():
    m = pair_metrics([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    assert m["accuracy"] == 1.0 and m["f1"] == 1.0 and m["roc_auc"] == 1.0
    assert m["accuracy_threshold"] == pytest.approx(0.55) and m["f1_threshold"] == pytest.approx(0.55)
    tied = pair_metrics([0.5, 0.5, 0.5, 0.1], [1, 0, 1, 0])
    # A cut inside the three 0.5s is not a threshold: 0.5 for all three or none.
    assert tied["accuracy"] == 0.75 and tied["accuracy_threshold"] == pytest.approx(0.3)
    assert tied["precision"] == pytest.approx(2 / 3) and tied["recall"] == 1.0 and tied["f1"] == pytest.approx(0.8)
    assert tied["roc_auc"] == pytest.approx(0.75)  # ties count one half
    # All negatives at the top: predicting no match is the best accuracy.
    assert pair_metrics([0.9, 0.8, 0.1], [0, 0, 1])["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(KbertError, match="labels must be 0 or 1"):
        pair_metrics([0.1, 0.2], [0, 2])


def test_roc_auc_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounded: many ties
    assert roc_auc(scores, labels) == pytest.approx(sk.roc_auc_score(labels, scores))
    assert roc_auc([0.1, 0.2], [1, 1]) == 0.5


def test_similarity_metrics_are_spearman_and_pearson():
    m = similarity_metrics([0.1, 0.4, 0.35, 0.8], [0.0, 0.5, 0.6, 1.0])
    assert m["spearman"] == pytest.approx(0.8) and -1 <= m["pearson"] <= 1
