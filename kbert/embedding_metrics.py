"""Metrics of sentence embeddings: retrieval and pair similarity (NumPy only).

The one implementation kbert's embed task, its export verification and the
benchmarks use, for kbert's vectors and for any other library's (the
sentence-transformers baseline of `benchmarks/embed_squad.py` is scored here
too, so the two are compared by the same code).

* `cosine_top_k`: exact nearest neighbours by cosine, in chunks of queries.
* `retrieval_metrics`: Recall@k, MRR@k and nDCG@k from the vectors and the
  relevant documents of each query. Definitions as sentence-transformers'
  `InformationRetrievalEvaluator`: Recall@k is the fraction of a query's
  relevant documents in its top k (with one relevant document, 1 or 0); MRR@k
  the reciprocal rank of the first relevant document in the top k (0 if
  none); nDCG@k with binary gains `1 / log2(rank + 1)` over the ideal ranking.
  Ties in score are broken by the lower document index.
* `pair_metrics`: for 0/1-labelled pairs, the best cosine-threshold accuracy
  and F1 (thresholds halfway between distinct scores, never splitting tied
  scores), and ROC AUC (ties count one half).
* `similarity_metrics`: Spearman and Pearson of cosines against gold scores.

Every value is a plain Python float or int (JSON-ready).
"""

import numpy as np

from kbert.errors import KbertError
from kbert.metrics import _average_ranks, regression_metrics

RETRIEVAL_KS = (1, 10)


def normalize_rows(vectors):
    """`vectors` (float32 `[n, d]`) divided by their L2 norms (zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
        raise KbertError(f"vectors: expected a 2-D array [n, dim], got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def cosine_top_k(queries, corpus, k=10, chunk=1024, normalized=False):
    """The `k` most similar corpus rows of every query row, by cosine.

    Args:
        queries: float `[n, d]`.
        corpus: float `[m, d]`.
        k: neighbours per query (at most `m`).
        chunk: queries scored per matrix product (memory: `chunk * m` floats).
        normalized: the rows are already unit vectors.

    Returns:
        `(indices, scores)`: int64 and float32 `[n, min(k, m)]`, best first;
        equal scores in corpus order.

    Examples:
    ```python
    indices, scores = cosine_top_k(query_vectors, corpus_vectors, k=10)
    ```
    """
    if not normalized:
        queries, corpus = normalize_rows(queries), normalize_rows(corpus)
    if len(corpus) == 0:
        raise KbertError("corpus: no vectors to search")
    if queries.shape[1] != corpus.shape[1]:
        raise KbertError(f"queries have {queries.shape[1]} dimensions, the corpus {corpus.shape[1]}")
    k = min(int(k), len(corpus))
    all_indices, all_scores = [], []
    for start in range(0, len(queries), chunk):
        sims = queries[start:start + chunk] @ corpus.T
        if k < sims.shape[1]:
            # The k-th best score, then every column at least that good: ties
            # at the boundary all kept, so the stable sort below picks by index.
            kth = np.partition(sims, -k, axis=1)[:, -k][:, None]
            candidates = [np.flatnonzero(row >= t) for row, t in zip(sims, kth)]
        else:
            candidates = [np.arange(sims.shape[1])] * len(sims)
        for row, columns in zip(sims, candidates):
            order = columns[np.argsort(-row[columns], kind="stable")[:k]]
            all_indices.append(order)
            all_scores.append(row[order])
    if not all_indices:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.asarray(all_indices, np.int64), np.asarray(all_scores, np.float32)


def ranking_metrics(ranked, relevant, ks=RETRIEVAL_KS, mrr_k=10, ndcg_k=10):
    """Recall@k, MRR@k and nDCG@k of ranked document lists.

    Args:
        ranked: per query, document indices best first (at least
            `max(ks, mrr_k, ndcg_k)` of them, or the whole corpus).
        relevant: per query, the indices of its relevant documents (non-empty).

    Returns:
        `{"recall@1": ..., "recall@10": ..., "mrr@10": ..., "ndcg@10": ...}`, floats in [0, 1].
    """
    if len(ranked) != len(relevant):
        raise KbertError(f"{len(ranked)} rankings but {len(relevant)} relevance lists")
    if not len(ranked):
        raise KbertError("no queries to score")
    recall = {k: 0.0 for k in ks}
    mrr = ndcg = 0.0
    for row, rel in zip(ranked, relevant):
        rel = set(int(i) for i in rel)
        if not rel:
            raise KbertError("a query without relevant documents cannot be scored")
        hits = [int(i) in rel for i in row]
        for k in ks:
            recall[k] += sum(hits[:k]) / len(rel)
        first = next((rank for rank, hit in enumerate(hits[:mrr_k], start=1) if hit), None)
        mrr += 1.0 / first if first else 0.0
        dcg = sum(1.0 / np.log2(rank + 1) for rank, hit in enumerate(hits[:ndcg_k], start=1) if hit)
        ideal = sum(1.0 / np.log2(rank + 1) for rank in range(1, min(len(rel), ndcg_k) + 1))
        ndcg += dcg / ideal
    n = len(ranked)
    out = {f"recall@{k}": recall[k] / n for k in ks}
    out[f"mrr@{mrr_k}"] = mrr / n
    out[f"ndcg@{ndcg_k}"] = ndcg / n
    return {k: float(v) for k, v in out.items()}


def retrieval_metrics(query_vectors, corpus_vectors, relevant, ks=RETRIEVAL_KS, mrr_k=10, ndcg_k=10):
    """Retrieval metrics of embeddings: exact cosine search, then `ranking_metrics`.

    Args:
        query_vectors: float `[n, d]`.
        corpus_vectors: float `[m, d]`.
        relevant: per query, the indices (into the corpus) of its relevant documents.

    Returns:
        The `ranking_metrics` dict.

    Examples:
    ```python
    retrieval_metrics(q, docs, [(0,), (3,)])   # {"recall@1": 0.5, "recall@10": 1.0, "mrr@10": 0.75, ...}
    ```
    """
    depth = max(*ks, mrr_k, ndcg_k)
    ranked, _ = cosine_top_k(query_vectors, corpus_vectors, k=depth)
    return ranking_metrics(ranked, relevant, ks, mrr_k, ndcg_k)


def pair_cosines(first, second):
    """Row-wise cosine of two `[n, d]` arrays."""
    first, second = normalize_rows(first), normalize_rows(second)
    if first.shape != second.shape:
        raise KbertError(f"pair vectors differ in shape: {first.shape} and {second.shape}")
    return np.sum(first * second, axis=1)


def pair_metrics(scores, labels):
    """Best-threshold accuracy and F1, and ROC AUC, of similarity scores for 0/1 labels.

    Args:
        scores: one similarity per pair (higher: more alike).
        labels: 1 (a match) or 0 per pair.

    Returns:
        `accuracy`, `accuracy_threshold`, `f1`, `f1_threshold`, `precision`,
        `recall` (at the best F1), `roc_auc`. A pair is predicted a match when
        its score is >= the threshold.

    Examples:
    ```python
    pair_metrics([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])["accuracy"]   # 1.0
    ```
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape or not len(scores):
        raise KbertError(f"expected one score per label, got {scores.shape} and {labels.shape}")
    if not set(np.unique(labels).tolist()) <= {0, 1}:
        raise KbertError("labels must be 0 or 1")
    labels = labels.astype(np.int64)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    positives = int(y.sum())
    negatives = len(y) - positives
    # Cut after position i (the top i + 1 predicted matches) where the next score is lower.
    true_pos = np.cumsum(y)
    predicted = np.arange(1, len(y) + 1)
    cuts = np.flatnonzero(np.r_[s[1:] < s[:-1], True])
    tp, pp = true_pos[cuts], predicted[cuts]
    accuracy = (tp + (negatives - (pp - tp))) / len(y)
    f1 = np.where(pp + positives > 0, 2 * tp / np.maximum(pp + positives, 1), 0.0)
    thresholds = np.r_[(s[cuts[:-1]] + s[cuts[:-1] + 1]) / 2, s[-1]]
    # Predicting no match at all: threshold above the top score.
    none_accuracy = negatives / len(y)
    best = int(np.argmax(accuracy))
    if none_accuracy > accuracy[best]:
        acc, acc_threshold = none_accuracy, float(s[0]) + 1e-6
    else:
        acc, acc_threshold = float(accuracy[best]), float(thresholds[best])
    best_f1 = int(np.argmax(f1))
    return {
        "accuracy": float(acc),
        "accuracy_threshold": float(acc_threshold),
        "f1": float(f1[best_f1]),
        "f1_threshold": float(thresholds[best_f1]),
        "precision": float(tp[best_f1] / pp[best_f1]),
        "recall": float(tp[best_f1] / positives) if positives else 0.0,
        "roc_auc": roc_auc(scores, labels),
    }


def roc_auc(scores, labels):
    """Area under the ROC curve: the chance a random match scores above a
    random non-match (ties count one half); 0.5 when one class is absent."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return 0.5
    ranks = _average_ranks(np.asarray(scores, np.float64))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def similarity_metrics(scores, gold):
    """Spearman and Pearson correlation of similarity scores with gold scores."""
    values = regression_metrics(gold, scores)
    return {"spearman": values["spearman"], "pearson": values["pearson"]}
