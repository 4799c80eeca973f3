"""Sentence embeddings: train on text pairs, evaluate retrieval and similarity.

Training follows sentence-transformers:

* `(anchor, positive[, negative])` pairs: MultipleNegativesRankingLoss, the
  cross-entropy of each anchor's cosines to every positive (and negative) of
  its batch, times `scale` (20, a temperature of 0.05), its own positive the
  right answer. Batches never hold one text twice (sentence-transformers'
  `NO_DUPLICATES` sampler), since a repeated positive would be a wrong
  in-batch negative;
* `(anchor, other, score)` rows: CosineSimilarityLoss, the squared error of
  the pair's cosine against the score (in [-1, 1]).

Both go through `model.fit` on the embedder itself: a batch of B pairs is one
batch of 2B (or 3B) texts, anchors first, then positives (then negatives),
and the loss reads the groups back from the model's `[2B, hidden]` output.
So the optimizer, checkpoints, TensorBoard and curve of `kbert.finetune` are
the other tasks', and the trained model is the embedder that is saved. Each
batch is cut to its longest text, which matters on CPUs when the anchors are
short questions.

Evaluation data decides the metrics (`kbert.embedding_metrics`): retrieval
sets (queries + corpus + relevance files, a SQuAD file, or a pair file
without scores) give Recall@1/@10, MRR@10 and nDCG@10 (the best epoch by
nDCG@10); 0/1-labelled pairs the cosine-threshold accuracy/F1 and ROC AUC
(by ROC AUC); scored pairs Spearman and Pearson (by Spearman).
"""

import math
import sys
from typing import ClassVar

import numpy as np

from kbert.errors import ConfigError, DataError
from kbert.tasks.base import Task

LOSSES = ("mnrl", "cosine")
# Embedding batches are cut to a multiple of this many tokens.
_LENGTH_STEP = 8


class EmbedTask(Task):
    """Sentence embeddings (`kbert.BertTextEmbedder`).

    Args:
        anchor_column, positive_column, negative_column, score_column, format,
            header: how to read pair files (see `kbert.data.pairs.read_pairs`).
        loss: "mnrl" (in-batch negatives) or "cosine" (scored pairs); default:
            "cosine" when the training file has a score column, else "mnrl".
        scale: MultipleNegativesRankingLoss' scale (1 / temperature).
        pooling: "mean", "cls", "max" or "mean_sqrt_len" for a new embedder;
            default: the starting model's if it is one, else "mean".
        normalize: L2-normalize a new embedder's vectors (default True, or
            the starting model's).
        corpus, relevance: evaluation as retrieval: the eval file is then the
            queries file, and these the corpus and relevance files (see
            `kbert.data.pairs.read_retrieval`).
        articles: `START:STOP` slice of a SQuAD training file's articles.
        eval_articles: the same for a SQuAD evaluation file.
    """

    name = "embed"
    metric = "ndcg@10"
    default_seq_len = 128
    saved_options = ()
    evaluate_aliases: ClassVar[dict] = {"articles": "eval_articles"}

    def __init__(self, anchor_column=None, positive_column=None, negative_column=None, score_column=None,
                 format=None, header=True, loss=None, scale=20.0, pooling=None, normalize=None, corpus=None,
                 relevance=None, articles=None, eval_articles=None):
        from kbert.layers.pooling import POOLING_MODES
        from kbert.tasks.qa import parse_articles

        self.read_options = dict(anchor_column=anchor_column, positive_column=positive_column,
                                 negative_column=negative_column, score_column=score_column, format=format,
                                 header=header)
        if loss is not None and loss not in LOSSES:
            raise ConfigError(f"loss: expected one of {list(LOSSES)}, got {loss!r}")
        if pooling is not None and pooling not in POOLING_MODES:
            raise ConfigError(f"pooling: expected one of {list(POOLING_MODES)}, got {pooling!r}")
        if not float(scale) > 0:
            raise ConfigError(f"scale: expected a positive number, got {scale!r}")
        if (corpus is None) != (relevance is None):
            raise ConfigError("corpus and relevance: retrieval evaluation needs both files")
        self.loss, self.scale, self.pooling = loss, float(scale), pooling
        self.normalize = None if normalize is None else bool(normalize)
        self.corpus, self.relevance = corpus, relevance
        self.articles, self.eval_articles = parse_articles(articles), parse_articles(eval_articles)
        self.columns = 2

    def read(self, path, labelled=True, split="train"):
        from kbert.data.pairs import pairs_retrieval, read_pairs, read_retrieval, read_squad_json, squad_retrieval

        if split == "train":
            return read_pairs(path, articles=self.articles, **self.read_options)
        if self.corpus is not None:
            data = read_retrieval(path, self.corpus, self.relevance, format=self.read_options["format"],
                                  header=self.read_options["header"])
        elif read_squad_json(path) is not None:
            data = squad_retrieval(path, articles=self.eval_articles)
        else:
            data = read_pairs(path, **self.read_options)
            if data.scores is None:
                data = pairs_retrieval(data)
        self.metric = eval_metric(data)
        return data

    def make_labels(self, train, eval=None):
        # No labels; what the training file settles is the loss.
        loss = self.loss or ("cosine" if train.scores is not None else "mnrl")
        if loss == "mnrl" and train.scores is not None:
            raise ConfigError(f"{train.source}: has a score column; the mnrl loss trains on (anchor, positive"
                              "[, negative]) rows: use --loss cosine, or --score-column '' to leave it out")
        if loss == "cosine":
            if train.scores is None:
                raise DataError(f"{train.source}: no score column; the cosine loss trains on (anchor, other, "
                                "score) rows (name it with --score-column)")
            for score, line in zip(train.scores, train.lines):
                if not -1.0 <= score <= 1.0:
                    raise DataError(f"{train.source}:{line}: score {score:g} is outside [-1, 1], the range of a "
                                    "cosine (scale it, e.g. STS-B's 0-5 divided by 5)")
        if len(train) < 2 and loss == "mnrl":
            raise DataError(f"{train.source}: one pair; in-batch negatives need two or more")
        self.loss = loss
        self.columns = 3 if train.negatives is not None else 2
        return None

    def build(self, encoder, labels, dropout):
        # Pooling has no weights, so no dropout of its own: the encoder's applies.
        from kbert.models import BertTextEmbedder

        return BertTextEmbedder(encoder, pooling=self.pooling or "mean",
                                normalize=True if self.normalize is None else self.normalize)

    def matches(self, model, labels):
        return self.pooling in (None, model.pooling) and self.normalize in (None, model.normalize)

    def compile_args(self, labels):
        from kbert.tasks.embed_losses import CosineSimilarityLoss, MultipleNegativesRankingLoss

        if self.loss == "cosine":
            return {"loss": CosineSimilarityLoss()}
        return {"loss": MultipleNegativesRankingLoss(scale=self.scale, columns=self.columns)}

    def train_dataset(self, data, tokenizer, labels, seq_len, batch_size, seed):
        """Batches of `columns * B` texts (anchors, then positives, then
        negatives) cut to their longest text, with the B scores as targets."""
        import tensorflow as tf

        columns = [data.anchors, data.others] + ([data.negatives] if data.negatives is not None else [])
        table = tf.constant(np.array(columns, dtype=object).T)  # [n, columns]
        scores = tf.constant(np.asarray(data.scores if data.scores is not None else [0.0] * len(data), np.float32))
        keys = [frozenset(row) for row in zip(*columns)]
        unique = self.loss != "cosine"

        def batches():  # endless: fit takes `steps_per_epoch` batches each epoch
            rng = np.random.default_rng(seed)
            while True:
                order = rng.permutation(len(keys))
                yield from (no_duplicate_batches(keys, batch_size, order) if unique else
                            [order[i:i + batch_size] for i in range(0, len(order), batch_size)])

        def encode(index):
            texts = tf.reshape(tf.transpose(tf.gather(table, index)), [-1])
            inputs = _cut(tokenizer(texts, seq_len=seq_len))
            return inputs, tf.gather(scores, index)

        ds = tf.data.Dataset.from_generator(lambda: (np.asarray(b, np.int32) for b in batches()),
                                            output_signature=tf.TensorSpec([None], tf.int32))
        ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        return ds, math.ceil(len(data) / batch_size)

    def features(self, data, tokenizer, labels, seq_len, training=False):
        """The model inputs of every text `data` needs embedded (see `PairData.texts`,
        `RetrievalData.texts`), padded to `seq_len`."""
        return encode_texts(tokenizer, data.texts(), seq_len)

    def evaluate(self, model, data, tokenizer, labels, seq_len, batch_size):
        vectors = embed_texts(model, tokenizer, data.texts(), seq_len, batch_size)
        return self.score(data, None, {"embedding": vectors}, labels)

    def score(self, data, features, outputs, labels):
        from kbert import embedding_metrics
        from kbert.data.pairs import RetrievalData

        vectors = np.asarray(outputs["embedding"] if isinstance(outputs, dict) else outputs, np.float32)
        if isinstance(data, RetrievalData):
            n = len(data.queries)
            return embedding_metrics.retrieval_metrics(vectors[:n], vectors[n:], data.relevant)
        n = len(data)
        cosines = embedding_metrics.pair_cosines(vectors[:n], vectors[n:2 * n])
        if data.binary:
            return embedding_metrics.pair_metrics(cosines, np.asarray(data.scores, np.int64))
        return embedding_metrics.similarity_metrics(cosines, data.scores)

    def predict(self, model, tokenizer, labels, seq_len, texts, pairs=None, batch_size=32):
        from kbert.embedding_metrics import pair_cosines

        vectors = embed_texts(model, tokenizer, list(texts), seq_len, batch_size)
        if pairs is None:
            return [{"embedding": [float(x) for x in v]} for v in vectors]
        other = embed_texts(model, tokenizer, list(pairs), seq_len, batch_size)
        return [{"similarity": float(c)} for c in pair_cosines(vectors, other)]

    def serving_texts(self, data, pair=False):
        return {"text": data.texts()}


def eval_metric(data):
    """The metric that picks the best epoch for evaluation data of this kind."""
    from kbert.data.pairs import RetrievalData

    if isinstance(data, RetrievalData):
        return "ndcg@10"
    return "roc_auc" if data.binary else "spearman"


def no_duplicate_batches(keys, batch_size, order):
    """Batches of example indices, in `order`, where no two examples share a
    text (`keys[i]`: the set of texts of example i).

    An example whose text is already in the batch being filled waits for the
    next batch. At the end, examples that only clash with each other make
    smaller batches.
    """
    pending, stream, out = [], iter(order), []
    while True:
        batch, seen, waiting = [], set(), []
        for i in pending:
            if len(batch) < batch_size and seen.isdisjoint(keys[i]):
                batch.append(i)
                seen.update(keys[i])
            else:
                waiting.append(i)
        pending = waiting
        if len(batch) < batch_size:
            for i in stream:
                if seen.isdisjoint(keys[i]):
                    batch.append(i)
                    seen.update(keys[i])
                    if len(batch) == batch_size:
                        break
                else:
                    pending.append(i)
        if not batch:
            return out
        out.append(batch)


def _cut(inputs):
    """Inputs cut to the longest real text of the batch (padding costs compute)."""
    import tensorflow as tf

    length = tf.reduce_max(tf.reduce_sum(inputs["padding_mask"], axis=1))
    return {k: v[:, :length] for k, v in inputs.items()}


def encode_texts(tokenizer, texts, seq_len, batch_size=512):
    """`{token_ids, segment_ids, padding_mask}` int32 `[len(texts), seq_len]` of single texts."""
    parts = [{k: np.asarray(v) for k, v in tokenizer(list(texts[i:i + batch_size]), seq_len=seq_len).items()}
             for i in range(0, len(texts), batch_size)]
    if not parts:
        return {k: np.zeros((0, seq_len), np.int32) for k in ("token_ids", "segment_ids", "padding_mask")}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def embed_texts(model, tokenizer, texts, seq_len, batch_size=64, progress=False):
    """The embedder's vectors of `texts`, float32 `[len(texts), hidden]`.

    Texts are batched longest first and each batch is cut to its longest text
    (rounded up to a multiple of 8, which bounds the number of traced shapes):
    the vectors are those of the full `seq_len` padding, computed faster.

    Args:
        model: a `BertTextEmbedder`.
        tokenizer: the model dir's `BertTokenizer`.
        texts: list of str.
        seq_len: tokens per text (longer texts are truncated).
        batch_size: texts per model call.
        progress: show a progress bar on stderr.
    """
    import tensorflow as tf
    from tqdm import tqdm

    # One trace for every batch shape (Keras' predict_on_batch retraces per shape).
    spec = tf.TensorSpec([None, None], tf.int32)
    run = tf.function(lambda inputs: model(inputs, training=False)["embedding"], reduce_retracing=True,
                      input_signature=[{k: spec for k in ("token_ids", "segment_ids", "padding_mask")}])
    texts = list(texts)
    hidden = model.output["embedding"].shape[-1]
    out = np.zeros((len(texts), hidden), np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    with tqdm(total=len(texts), unit="text", disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            inputs = {k: np.asarray(v) for k, v in tokenizer([texts[i] for i in rows], seq_len=seq_len).items()}
            length = int(inputs["padding_mask"].sum(axis=1).max())
            length = min(seq_len, -(-length // _LENGTH_STEP) * _LENGTH_STEP)
            inputs = {k: v[:, :length] for k, v in inputs.items()}
            out[rows] = np.asarray(run(inputs), np.float32)
            bar.update(len(rows))
    return out
