"""Evaluation metrics: GLUE classification/regression, CoNLL NER and SQuAD.

Every function takes plain Python lists (or NumPy arrays) and returns plain
Python floats, ints and dicts, so results go straight into `json.dump`.

* `classification_metrics`: accuracy, F1 (class 1 for binary tasks, the
  GLUE/MRPC convention; macro-F1 otherwise) and Matthews correlation (the
  multiclass form of Gorodkin 2004, as `sklearn.metrics.matthews_corrcoef`).
* `regression_metrics`: Pearson, Spearman (average ranks for ties) and MSE,
  for STS-B.
* `entity_spans` / `ner_metrics`: entity-level precision/recall/F1 with the
  chunking rules of `conlleval` as implemented by `seqeval`'s default mode
  (IOB1, IOB2 and IOBES tags all accepted).
* `squad_metrics` / `squad_v2_metrics`: the official SQuAD v1.1 and v2.0
  evaluation scripts' exact match and F1 (0..100).

Why our own code rather than scikit-learn, SciPy, seqeval or the SQuAD
scripts: none of them is a kbert dependency and these metrics are a few dozen
lines each; seqeval ships only a source archive whose legacy `setup.py` fails
to build under recent setuptools; the SQuAD scripts are command-line files,
not importable packages; and we want bad input to raise `KbertError` with one
clear line and degenerate cases (a constant column, an empty class) to give
0.0 rather than NaN plus a warning. `tests/test_metrics.py` checks these
functions against scikit-learn, SciPy and seqeval when they are installed.
"""

import collections
import math
import re
import string

import numpy as np

from kbert.errors import KbertError

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_TAG_PREFIXES = ("B-", "I-", "E-", "S-")
_BARE_TAGS = ("O", "B", "I", "E", "S")


# --------------------------------------------------------------------------
# Classification and regression (GLUE).


def classification_metrics(labels, predictions, num_classes):
    """Accuracy, F1 and Matthews correlation of class-id predictions.

    Args:
        labels: gold class ids, a list or 1-D array of ints in
            `[0, num_classes)`.
        predictions: predicted class ids, same length as `labels`.
        num_classes: number of classes (at least 2).

    Returns:
        A dict of floats in `[0, 1]` (`mcc` in `[-1, 1]`):
        `accuracy`; `f1`: with 2 classes the F1 of class id 1 (GLUE's MRPC/QQP
        convention), with more the unweighted mean F1 over the classes that
        occur in `labels` or `predictions` (scikit-learn's `average="macro"`);
        `mcc`: Matthews correlation, 0.0 when undefined (all labels or all
        predictions in one class). An F1 whose class never occurs is 0.0.

    Raises:
        KbertError: lengths differ, no examples, a non-integer id, an id out
            of range, or `num_classes` < 2.

    Examples:
        >>> classification_metrics([1, 1, 0, 0], [1, 0, 0, 0], num_classes=2)
        {'accuracy': 0.75, 'f1': 0.6666666666666666, 'mcc': 0.5773502691896258}
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise KbertError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    num_classes = int(num_classes)
    labels = _class_ids(labels, "labels", num_classes)
    predictions = _class_ids(predictions, "predictions", num_classes)
    _check_lengths(labels, predictions)

    confusion = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)
    # Python ints: n**2 sums in the MCC overflow nothing and stay exact.
    true_counts = [int(c) for c in confusion.sum(axis=1)]
    pred_counts = [int(c) for c in confusion.sum(axis=0)]
    correct = [int(confusion[k, k]) for k in range(num_classes)]
    total = len(labels)

    def class_f1(k):
        # 2PR/(P+R) written with counts; equals it whenever it is defined.
        denominator = true_counts[k] + pred_counts[k]
        return 2 * correct[k] / denominator if denominator else 0.0

    if num_classes == 2:
        f1 = class_f1(1)
    else:
        present = [k for k in range(num_classes) if true_counts[k] or pred_counts[k]]
        f1 = sum(class_f1(k) for k in present) / len(present)

    # Gorodkin's R_K: the covariance form of MCC for K classes.
    hits = sum(correct)
    cov_tp = hits * total - sum(t * p for t, p in zip(true_counts, pred_counts))
    cov_tt = total * total - sum(t * t for t in true_counts)
    cov_pp = total * total - sum(p * p for p in pred_counts)
    mcc = cov_tp / math.sqrt(cov_tt * cov_pp) if cov_tt and cov_pp else 0.0

    return {"accuracy": hits / total, "f1": float(f1), "mcc": float(mcc)}


def regression_metrics(labels, predictions):
    """Pearson and Spearman correlation and mean squared error.

    Args:
        labels: gold values, a list or 1-D array of finite numbers.
        predictions: predicted values, same length.

    Returns:
        A dict of floats: `pearson`, `spearman` (Pearson of the ranks, tied
        values sharing their average rank, as `scipy.stats.spearmanr`) and
        `mse`. A correlation is 0.0 when either side is constant.

    Raises:
        KbertError: lengths differ, no values, or a value that is not a
            finite number.

    Examples:
        >>> regression_metrics([1, 2, 2, 3], [10, 20, 30, 100])["spearman"]
        0.9486832980505138
    """
    labels = _values(labels, "labels")
    predictions = _values(predictions, "predictions")
    _check_lengths(labels, predictions)
    return {
        "pearson": _pearson(labels, predictions),
        "spearman": _pearson(_average_ranks(labels), _average_ranks(predictions)),
        "mse": float(np.mean((labels - predictions) ** 2)),
    }


def _class_ids(values, name, num_classes):
    array = np.asarray(values)
    if array.ndim != 1:
        raise KbertError(f"{name} must be a flat list of class ids, got shape {array.shape}")
    if array.size == 0:
        raise KbertError(f"{name} is empty: nothing to score")
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    elif array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise KbertError(f"{name} must be integer class ids, got {array.dtype} values")
    bad = np.flatnonzero((array < 0) | (array >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise KbertError(f"{name}[{i}] = {array[i]} is not a class id in [0, {num_classes})")
    return array.astype(np.int64)


def _values(values, name):
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise KbertError(f"{name} must be numbers") from None
    if array.ndim != 1:
        raise KbertError(f"{name} must be a flat list of numbers, got shape {array.shape}")
    if array.size == 0:
        raise KbertError(f"{name} is empty: nothing to score")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        i = int(bad[0])
        raise KbertError(f"{name}[{i}] = {array[i]} is not a finite number")
    return array


def _check_lengths(labels, predictions):
    if len(labels) != len(predictions):
        raise KbertError(f"labels has {len(labels)} values but predictions has {len(predictions)}")


def _pearson(x, y):
    # Test constancy exactly: the mean of [0.1] * 3 is not exactly 0.1, so
    # centred values of a constant column can be tiny non-zeros.
    if x.min() == x.max() or y.min() == y.max():
        return 0.0
    dx = x - x.mean()
    dy = y - y.mean()
    r = float(np.dot(dx, dy) / math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy))))
    return min(1.0, max(-1.0, r))


def _average_ranks(x):
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    # Tie groups are runs of equal values; each gets the mean of its 1-based
    # positions, (first + last) / 2.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(x)]
    group_ranks = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(group_ranks, ends - starts)
    return ranks


# --------------------------------------------------------------------------
# Named entity recognition (CoNLL).


def entity_spans(tags):
    """Entity chunks of one tag sequence, with conlleval's chunking rules.

    Tags are `O` or a prefix `B-`, `I-`, `E-`, `S-` plus an entity type
    (`B-PER`); a bare `B`, `I`, `E` or `S` is an entity with type `""`. IOB1,
    IOB2 and IOBES sequences, or mixtures, are read the way `seqeval`'s
    default (non-strict) mode and `conlleval` read them:

    * an entity starts at `B` or `S`; at `I` or `E` after `O`, `E` or `S`; and
      at any non-`O` tag whose type differs from the previous tag's type (so
      `I-PER` after `O` or after `B-LOC` starts a PER entity);
    * an entity ends after `E` or `S`, before `B`, `S` or `O`, and before a
      tag of another type (so `E-ORG I-ORG` is two entities).

    Args:
        tags: a sequence of str tags, one per token.

    Returns:
        A list of `(type, start, end)` tuples, `end` exclusive, in order.
        (`seqeval.metrics.sequence_labeling.get_entities` returns the same
        chunks with an inclusive end and names the bare-tag type `"_"`.)

    Raises:
        KbertError: a tag that is not `O` nor starts with `B`/`I`/`E`/`S`
            (message names the token position).

    Examples:
        >>> entity_spans(["B-PER", "I-PER", "O", "I-LOC", "S-ORG"])
        [('PER', 0, 2), ('LOC', 3, 4), ('ORG', 4, 5)]
    """
    spans = []
    prev, prev_type, start = "O", "", 0
    tags = list(tags)
    # A trailing "O" closes an entity that runs to the end of the sequence.
    for i, tag in enumerate(tags + ["O"]):
        if not isinstance(tag, str) or not (tag in _BARE_TAGS or tag.startswith(_TAG_PREFIXES)):
            raise KbertError(f"token {i}: {tag!r} is not an entity tag (expected O, or B-/I-/E-/S- and a type)")
        prefix, type_ = tag[0], tag[2:]
        ends = (
            prev in "ES"
            or (prev in "BI" and prefix in "BSO")
            or (prev != "O" and prev_type != type_)
        )
        starts = (
            prefix in "BS"
            or (prefix in "IE" and prev in "OES")
            or (prefix != "O" and prev_type != type_)
        )
        if ends:
            spans.append((prev_type, start, i))
        if starts:
            start = i
        prev, prev_type = prefix, type_
    return spans


def ner_metrics(true_tags, pred_tags):
    """Entity-level precision, recall and F1, plus token accuracy.

    An entity counts as found only when the prediction has one of the same
    type with the same start and end (`entity_spans`). Scores are
    micro-averaged over all entities, like `seqeval.metrics.f1_score` and the
    "micro avg" row of `seqeval.metrics.classification_report` in their
    default mode, i.e. the CoNLL-2003 `conlleval` numbers. Entities never
    cross sentences.

    Args:
        true_tags: list of sentences, each a list of gold tags.
        pred_tags: list of sentences, each a list of predicted tags, with the
            same number of tags as the gold sentence.

    Returns:
        A dict: `precision`, `recall`, `f1` (floats in `[0, 1]`, 0.0 when
        undefined), `accuracy` (fraction of tokens whose tag is right, `O`
        tokens included), `per_type`: `{type: {"precision", "recall", "f1",
        "support"}}` for every type found in gold or predictions, `support`
        being the number of gold entities.

    Raises:
        KbertError: the sentence counts differ, a sentence's tag counts
            differ (names the sentence index), there are no tags, or a tag is
            malformed (names the sentence and token).

    Examples:
        >>> ner_metrics([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])["f1"]
        0.0
    """
    true_tags = list(true_tags)
    pred_tags = list(pred_tags)
    if len(true_tags) != len(pred_tags):
        raise KbertError(f"true_tags has {len(true_tags)} sentences but pred_tags has {len(pred_tags)}")
    gold, found = set(), set()
    tokens = right = 0
    for i, (true_sentence, pred_sentence) in enumerate(zip(true_tags, pred_tags)):
        true_sentence, pred_sentence = list(true_sentence), list(pred_sentence)
        if len(true_sentence) != len(pred_sentence):
            raise KbertError(
                f"sentence {i}: true_tags has {len(true_sentence)} tags but pred_tags has {len(pred_sentence)}"
            )
        for name, sentence, into in (("true_tags", true_sentence, gold), ("pred_tags", pred_sentence, found)):
            try:
                spans = entity_spans(sentence)
            except KbertError as e:
                raise KbertError(f"{name} sentence {i}, {e}") from None
            into.update((i,) + span for span in spans)
        tokens += len(true_sentence)
        right += sum(t == p for t, p in zip(true_sentence, pred_sentence))
    if tokens == 0:
        raise KbertError("no tags to score: every sentence is empty")

    scores = _prf(len(gold & found), len(found), len(gold))
    per_type = {}
    for type_ in sorted({e[1] for e in gold} | {e[1] for e in found}):
        gold_type = {e for e in gold if e[1] == type_}
        found_type = {e for e in found if e[1] == type_}
        per_type[type_] = _prf(len(gold_type & found_type), len(found_type), len(gold_type))
        per_type[type_]["support"] = len(gold_type)
    return {**scores, "accuracy": right / tokens, "per_type": per_type}


def _prf(correct, predicted, actual):
    precision = correct / predicted if predicted else 0.0
    recall = correct / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --------------------------------------------------------------------------
# Question answering (SQuAD v1.1 and v2.0).


def normalize_answer(s):
    """Normalise an answer as the official SQuAD scripts do.

    In order: lowercase, delete `string.punctuation` characters, replace the
    whole words a/an/the with a space, collapse whitespace. The order
    matters: `"the.cat"` becomes `"thecat"`, not `"cat"`.

    Args:
        s: the answer text.

    Returns:
        The normalised str.

    Examples:
        >>> normalize_answer("The  Cat!")
        'cat'
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction, ground_truths):
    """1.0 when the normalised prediction equals a normalised gold answer.

    Args:
        prediction: the predicted answer text.
        ground_truths: a list of gold answer texts (or one str).

    Returns:
        1.0 or 0.0 (the official v1.1 script's per-question score; its
        totals are these averaged times 100).

    Raises:
        KbertError: no gold answers, or a non-str answer.

    Examples:
        >>> exact_match("the Cat.", ["a cat", "dog"])
        1.0
    """
    golds = _gold_list(ground_truths, "ground_truths", allow_empty=False)
    prediction = _text(prediction, "prediction")
    return max(_exact(prediction, gold) for gold in golds)


def f1_score(prediction, ground_truths):
    """Best token-level F1 of the prediction against the gold answers.

    Tokens are the whitespace-split `normalize_answer` text; overlap counts
    repeated tokens at most as often as both sides have them. As in the
    official v1.1 script, an answer that normalises to nothing scores 0.0
    even against a gold that also normalises to nothing.

    Args:
        prediction: the predicted answer text.
        ground_truths: a list of gold answer texts (or one str).

    Returns:
        A float in `[0, 1]`: the maximum F1 over the gold answers.

    Raises:
        KbertError: no gold answers, or a non-str answer.

    Examples:
        >>> f1_score("the big cat", ["cat", "big dog"])
        0.6666666666666666
    """
    golds = _gold_list(ground_truths, "ground_truths", allow_empty=False)
    prediction = _text(prediction, "prediction")
    return max(_f1_v1(prediction, gold) for gold in golds)


def squad_metrics(predictions, answers):
    """SQuAD v1.1 exact match and F1, as the official `evaluate-v1.1.py`.

    Args:
        predictions: `{question_id: predicted_text}`. Ids not in `answers`
            are ignored.
        answers: `{question_id: [gold_text, ...]}`, at least one gold answer
            per question.

    Returns:
        `{"exact_match", "f1"}` as percentages (0..100) averaged over every
        question in `answers`, a question without prediction scoring 0, and
        `"total"`, the number of questions.

    Raises:
        KbertError: no questions, a question without gold answers, or a
            non-str text (the message names the question id).

    Examples:
        >>> squad_metrics({"q1": "Denver Broncos"}, {"q1": ["Denver Broncos"], "q2": ["x"]})
        {'exact_match': 50.0, 'f1': 50.0, 'total': 2}
    """
    _check_dicts(predictions, answers)
    em = f1 = 0.0
    for qid, golds in answers.items():
        golds = _gold_list(golds, f"answers[{qid!r}]", allow_empty=False)
        if qid not in predictions:
            continue
        prediction = _text(predictions[qid], f"predictions[{qid!r}]")
        em += max(_exact(prediction, gold) for gold in golds)
        f1 += max(_f1_v1(prediction, gold) for gold in golds)
    total = len(answers)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total, "total": total}


def squad_v2_metrics(predictions, answers, na_probs=None, threshold=1.0):
    """SQuAD v2.0 scores, as the official `evaluate-v2.0.py`.

    A question whose gold list is empty is unanswerable ("NoAns"); its only
    gold answer is the empty string, so predicting `""` scores 1. Gold
    answers that normalise to nothing are dropped first (a question left with
    none is scored against `""` but still counts as "HasAns", as in the
    official script). Unlike v1.1, F1 is 1.0 when both prediction and gold
    are empty.

    With `na_probs`, a question whose no-answer probability is above
    `threshold` counts as answered "no answer": it scores 1.0 exactly when
    it is unanswerable (the official `apply_no_ans_threshold`).

    Args:
        predictions: `{question_id: predicted_text}`, `""` for "no answer".
            Ids not in `answers` are ignored.
        answers: `{question_id: [gold_text, ...]}`, `[]` when unanswerable.
        na_probs: optional `{question_id: probability of no answer}`, needed
            for every question that has a prediction.
        threshold: the no-answer threshold used with `na_probs`.

    Returns:
        `{"exact", "f1", "total"}` over all questions, plus `HasAns_exact`,
        `HasAns_f1`, `HasAns_total` when some question is answerable and
        `NoAns_*` when some is not; scores in 0..100. A question without a
        prediction scores 0 (the official script would crash on it).

    Raises:
        KbertError: no questions, a non-str text, a missing or non-numeric
            no-answer probability (the message names the question id).

    Examples:
        >>> squad_v2_metrics({"q1": "Paris", "q2": ""}, {"q1": ["Paris"], "q2": []})["NoAns_exact"]
        100.0
    """
    _check_dicts(predictions, answers)
    if na_probs is not None and not isinstance(na_probs, dict):
        raise KbertError(f"na_probs must be a dict of question id to probability, got {type(na_probs).__name__}")
    exact, f1, has_answer = {}, {}, {}
    for qid, golds in answers.items():
        golds = _gold_list(golds, f"answers[{qid!r}]", allow_empty=True)
        has_answer[qid] = bool(golds)
        golds = [gold for gold in golds if normalize_answer(gold)] or [""]
        exact[qid] = f1[qid] = 0.0
        if qid not in predictions:
            continue
        prediction = _text(predictions[qid], f"predictions[{qid!r}]")
        if na_probs is not None and _na_prob(na_probs, qid) > threshold:
            exact[qid] = f1[qid] = float(not has_answer[qid])
            continue
        exact[qid] = max(_exact(prediction, gold) for gold in golds)
        f1[qid] = max(_f1_v2(prediction, gold) for gold in golds)

    def summary(qids):
        return {
            "exact": 100.0 * sum(exact[q] for q in qids) / len(qids),
            "f1": 100.0 * sum(f1[q] for q in qids) / len(qids),
            "total": len(qids),
        }

    out = summary(list(answers))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q in answers if has_answer[q] is wanted]
        if qids:
            out.update({f"{prefix}_{key}": value for key, value in summary(qids).items()})
    return out


def _exact(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _overlap_f1(pred_tokens, gold_tokens):
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _f1_v1(prediction, gold):
    return _overlap_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def _f1_v2(prediction, gold):
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        # v2.0: "no answer" is right only against "no answer".
        return float(pred_tokens == gold_tokens)
    return _overlap_f1(pred_tokens, gold_tokens)


def _check_dicts(predictions, answers):
    for name, value in (("predictions", predictions), ("answers", answers)):
        if not isinstance(value, dict):
            raise KbertError(f"{name} must be a dict keyed by question id, got {type(value).__name__}")
    if not answers:
        raise KbertError("answers is empty: no questions to score")


def _gold_list(golds, where, allow_empty):
    # A bare str would otherwise be scored character by character.
    if isinstance(golds, str):
        golds = [golds]
    if not isinstance(golds, (list, tuple)):
        raise KbertError(f"{where} must be a list of answer texts, got {type(golds).__name__}")
    if not golds and not allow_empty:
        raise KbertError(f"{where} has no gold answers")
    for i, gold in enumerate(golds):
        _text(gold, f"{where}[{i}]")
    return list(golds)


def _text(value, where):
    if not isinstance(value, str):
        raise KbertError(f"{where} must be a str, got {type(value).__name__}")
    return value


def _na_prob(na_probs, qid):
    if qid not in na_probs:
        raise KbertError(f"na_probs has no entry for question {qid!r}")
    try:
        return float(na_probs[qid])
    except (TypeError, ValueError):
        raise KbertError(f"na_probs[{qid!r}] = {na_probs[qid]!r} is not a number") from None
