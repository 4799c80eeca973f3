import json
import random
import warnings

import numpy as np
import pytest

from kbert.errors import KbertError
from kbert.io import iter_text_lines
from kbert.metrics import (
    classification_metrics,
    entity_spans,
    exact_match,
    f1_score,
    ner_metrics,
    normalize_answer,
    regression_metrics,
    squad_metrics,
    squad_v2_metrics,
)
from conftest import data_path

# ---------------------------------------------------------------- classification


def test_binary_classification_by_hand():
    # tp=3 (rows 0-2), fn=1 (row 3), fp=2 (rows 4-5), tn=4 (rows 6-9).
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    preds = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    out = classification_metrics(labels, preds, num_classes=2)
    # accuracy = (3 + 4) / 10
    assert out["accuracy"] == pytest.approx(0.7)
    # F1 of class 1 = 2tp / (2tp + fp + fn) = 6 / 9
    assert out["f1"] == pytest.approx(2 / 3)
    # MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (12 - 2) / sqrt(5*4*6*5) = 1/sqrt(6)
    assert out["mcc"] == pytest.approx(1 / np.sqrt(6))
    # swapping the class ids changes F1 (now the F1 of the old class 0) but not MCC or accuracy:
    # F1 = 2*4 / (8 + 1 + 2) = 8/11
    swapped = classification_metrics([1 - x for x in labels], np.array([1 - x for x in preds]), 2)
    assert swapped["f1"] == pytest.approx(8 / 11)
    assert swapped["mcc"] == pytest.approx(out["mcc"])
    assert all(type(v) is float for v in out.values())
    json.dumps(out)


def test_multiclass_classification_by_hand():
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    out = classification_metrics(labels, preds, num_classes=3)
    assert out["accuracy"] == pytest.approx(4 / 6)
    # class 0: tp=1 fp=1 fn=1 -> 2/4; class 1: tp=2 fp=1 fn=0 -> 4/5; class 2: tp=1 fp=0 fn=1 -> 2/3
    assert out["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # Gorodkin: c=4 correct, s=6, true counts t=(2,2,2), pred counts p=(2,3,1)
    # cov(t,p) = c*s - t.p = 24 - 12 = 12; s^2 - p.p = 36 - 14 = 22; s^2 - t.t = 36 - 12 = 24
    assert out["mcc"] == pytest.approx(12 / np.sqrt(22 * 24))


def test_macro_f1_skips_classes_never_seen():
    # Class 3 occurs nowhere: macro-F1 is over classes 0..2 only (as scikit-learn's
    # average="macro"), so perfect predictions give 1.0, not 0.75.
    out = classification_metrics([0, 1, 2], [0, 1, 2], num_classes=4)
    assert out == {"accuracy": 1.0, "f1": 1.0, "mcc": 1.0}


def test_degenerate_classification_gives_zero_not_nan():
    # No class-1 anywhere: F1 of class 1 is undefined -> 0.0; all in one class -> MCC 0.0.
    out = classification_metrics([0, 0, 0], [0, 0, 0], num_classes=2)
    assert out == {"accuracy": 1.0, "f1": 0.0, "mcc": 0.0}
    # Constant predictions: MCC undefined -> 0.0; F1 = 2*2 / (2*2 + 2 + 0) = 2/3
    out = classification_metrics([1, 1, 0, 0], [1, 1, 1, 1], num_classes=2)
    assert out["mcc"] == 0.0
    assert out["f1"] == pytest.approx(2 / 3)
    # Perfectly wrong binary predictions: MCC = -1
    assert classification_metrics([0, 1, 0, 1], [1, 0, 1, 0], 2)["mcc"] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "labels, preds, num_classes, message",
    [
        ([0, 1], [0], 2, "labels has 2 values but predictions has 1"),
        ([], [], 2, "labels is empty"),
        ([0, 2], [0, 1], 2, r"labels\[1\] = 2 is not a class id in \[0, 2\)"),
        ([0, 1], [0, -1], 2, r"predictions\[1\] = -1"),
        ([0, 1], [0, 0.5], 2, "integer class ids"),
        ([0, 1], [0, 1], 1, "num_classes must be an integer >= 2"),
    ],
)
def test_classification_errors(labels, preds, num_classes, message):
    with pytest.raises(KbertError, match=message):
        classification_metrics(labels, preds, num_classes)


# ---------------------------------------------------------------- regression


def test_regression_by_hand_with_ties():
    labels = [1, 2, 2, 3]
    preds = [10, 20, 30, 100]
    out = regression_metrics(labels, preds)
    # Pearson: dx = (-1, 0, 0, 1), dy = (-30, -20, -10, 60); sum dxdy = 90, sum dx^2 = 2,
    # sum dy^2 = 5000 -> 90 / sqrt(10000) = 0.9
    assert out["pearson"] == pytest.approx(0.9)
    # Spearman: label ranks (1, 2.5, 2.5, 4) (tie shares 2 and 3), pred ranks (1, 2, 3, 4);
    # centred: (-1.5, 0, 0, 1.5) and (-1.5, -.5, .5, 1.5): 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert out["spearman"] == pytest.approx(np.sqrt(0.9))
    # MSE = (9^2 + 18^2 + 28^2 + 97^2) / 4 = (81 + 324 + 784 + 9409) / 4
    assert out["mse"] == pytest.approx(2649.5)
    assert all(type(v) is float for v in out.values())


def test_regression_constant_side_gives_zero_correlation():
    out = regression_metrics([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert out["pearson"] == 0.0 and out["spearman"] == 0.0
    # (16 + 9 + 4) / 3
    assert out["mse"] == pytest.approx(29 / 3)
    # 0.1 * 3 / 3 != 0.1 in floating point: still exactly constant, still 0.0
    out = regression_metrics(np.array([0.1, 0.1, 0.1], dtype=np.float32), [1, 2, 3])
    assert out["pearson"] == 0.0 and out["spearman"] == 0.0


def test_regression_perfect_and_inverted():
    out = regression_metrics([1, 2, 3, 4], [2, 4, 6, 80])
    assert out["spearman"] == 1.0
    assert regression_metrics([1, 2, 3], [3, 2, 1])["pearson"] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "labels, preds, message",
    [
        ([1.0, 2.0], [1.0], "labels has 2 values but predictions has 1"),
        ([], [], "labels is empty"),
        ([1.0, float("nan")], [1.0, 2.0], r"labels\[1\] = nan is not a finite number"),
        ([1.0, 2.0], ["a", "b"], "predictions must be numbers"),
    ],
)
def test_regression_errors(labels, preds, message):
    with pytest.raises(KbertError, match=message):
        regression_metrics(labels, preds)


# ---------------------------------------------------------------- entity chunks


@pytest.mark.parametrize(
    "tags, expected",
    [
        # IOB2
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
        # IOB1: I- after O (or at the start) starts an entity; B- only splits same-type neighbours
        (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]),
        (["O", "I-MISC", "I-MISC"], [("MISC", 1, 3)]),
        (["I-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        # a type change starts a new entity, whatever the prefix
        (["B-LOC", "I-PER"], [("LOC", 0, 1), ("PER", 1, 2)]),
        (["I-LOC", "I-PER", "I-PER"], [("LOC", 0, 1), ("PER", 1, 3)]),
        (["B-PER", "E-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),
        # BIOES
        (["S-PER", "B-ORG", "I-ORG", "E-ORG", "S-LOC"], [("PER", 0, 1), ("ORG", 1, 4), ("LOC", 4, 5)]),
        (["S-PER", "S-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        # E- closes an entity: a following I- (or E-) starts a new one
        (["B-ORG", "E-ORG", "I-ORG", "E-ORG"], [("ORG", 0, 2), ("ORG", 2, 4)]),
        (["E-ORG", "E-ORG"], [("ORG", 0, 1), ("ORG", 1, 2)]),
        (["S-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["O", "E-LOC"], [("LOC", 1, 2)]),
        # unfinished BIOES entities still count (conlleval is lenient)
        (["B-ORG", "I-ORG"], [("ORG", 0, 2)]),
        # type-less tags have type ""
        (["B", "I", "O", "I", "B", "S", "E"], [("", 0, 2), ("", 3, 4), ("", 4, 5), ("", 5, 6), ("", 6, 7)]),
        # the type is everything after the first "-"
        (["B-PER-X", "I-PER-X"], [("PER-X", 0, 2)]),
        (["O", "O"], []),
        ([], []),
    ],
)
def test_entity_spans(tags, expected):
    assert entity_spans(tags) == expected


@pytest.mark.parametrize("bad", ["X-PER", "PER", "", "b-PER", "O-PER", None])
def test_entity_spans_rejects_malformed_tags(bad):
    with pytest.raises(KbertError, match="token 1: .* is not an entity tag"):
        entity_spans(["O", bad])


# ---------------------------------------------------------------- NER scores


def test_ner_metrics_seqeval_readme_example():
    true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    out = ner_metrics(true, pred)
    # gold {MISC 3-6, PER 0-2}, predicted {MISC 2-6, PER 0-2}: 1 of 2 right both ways
    assert (out["precision"], out["recall"], out["f1"]) == (0.5, 0.5, 0.5)
    # 8 of 10 tokens right (positions 2 and 5 of sentence 0 differ)
    assert out["accuracy"] == pytest.approx(0.8)
    assert out["per_type"] == {
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    json.dumps(out)


def test_ner_metrics_type_only_predicted_and_sentence_boundaries():
    true = [["B-PER", "O", "B-LOC"], ["I-PER"], ["I-PER"]]
    pred = [["B-PER", "O", "B-ORG"], ["I-PER"], ["O"]]
    out = ner_metrics(true, pred)
    # gold: PER(0,0-1), LOC(0,2-3), PER(1,0-1), PER(2,0-1) -- sentences never merge entities
    # predicted: PER(0,0-1), ORG(0,2-3), PER(1,0-1); right: 2
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx(2 / 4)
    # F1 = 2PR/(P+R) = 2 * (2/3)(1/2) / (7/6) = 4/7
    assert out["f1"] == pytest.approx(4 / 7)
    # tokens: 5, wrong: sentence 0 token 2, sentence 2 token 0
    assert out["accuracy"] == pytest.approx(3 / 5)
    assert out["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert out["per_type"]["LOC"]["support"] == 1
    # PER: 2 right of 2 predicted, of 3 gold -> P=1, R=2/3, F1 = 0.8
    assert out["per_type"]["PER"]["recall"] == pytest.approx(2 / 3)
    assert out["per_type"]["PER"]["f1"] == pytest.approx(0.8)


def test_ner_metrics_no_entities():
    out = ner_metrics([["O", "O"]], [["O", "O"]])
    assert out == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 1.0, "per_type": {}}


@pytest.mark.parametrize(
    "true, pred, message",
    [
        ([["O"], ["O", "B-PER"]], [["O"], ["O"]], "sentence 1: true_tags has 2 tags but pred_tags has 1"),
        ([["O"]], [["O"], ["O"]], "true_tags has 1 sentences but pred_tags has 2"),
        ([["O"], ["O", "B-PER"]], [["O"], ["O", "PER"]], "pred_tags sentence 1, token 1: 'PER' is not"),
        ([[]], [[]], "no tags to score"),
    ],
)
def test_ner_metrics_errors(true, pred, message):
    with pytest.raises(KbertError, match=message):
        ner_metrics(true, pred)


def _conll_sentences(path):
    sentences, current = [], []
    for _, line in iter_text_lines(path):
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
        elif not line.startswith("-DOCSTART-"):
            current.append(line.split()[-1])
    if current:
        sentences.append(current)
    return sentences


def test_conll2003_test_set_entity_count():
    sentences = _conll_sentences(data_path("conll2003", "test.txt"))
    assert len(sentences) == 3453
    spans = [span for s in sentences for span in entity_spans(s)]
    # The published CoNLL-2003 English test-set counts (Tjong Kim Sang & De Meulder 2003, table 2).
    assert len(spans) == 5648
    counts = {t: sum(1 for s in spans if s[0] == t) for t in ("LOC", "MISC", "ORG", "PER")}
    assert counts == {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}
    out = ner_metrics(sentences, sentences)
    assert out["f1"] == 1.0 and out["accuracy"] == 1.0
    assert sum(v["support"] for v in out["per_type"].values()) == 5648


# ---------------------------------------------------------------- SQuAD


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The  Cat!", "cat"),
        ("An apple, a day.", "apple day"),
        ("theater", "theater"),  # articles only as whole words
        ("Hello-World", "helloworld"),  # punctuation is deleted, not spaced
        ("the.cat", "thecat"),  # punctuation goes before articles (official order)
        ("  A\tTHE\nan  ", ""),
        ("\u201cCat\u201d", "\u201ccat\u201d"),  # curly quotes are not string.punctuation
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1_with_several_golds():
    assert exact_match("the Cat.", ["a cat", "dog"]) == 1.0
    assert exact_match("cats", ["cat"]) == 0.0
    # pred tokens (big, cat); vs (cat): P=1/2 R=1 -> 2/3; vs (big, dog): P=R=1/2 -> 1/2; max 2/3
    assert f1_score("the big cat", ["cat", "big dog"]) == pytest.approx(2 / 3)
    # repeated tokens overlap only as often as both sides have them: P=1/3 R=1 -> 1/2
    assert f1_score("cat cat cat", ["cat"]) == pytest.approx(0.5)
    # a bare str is one gold answer, not a list of characters
    assert exact_match("c", "cat") == 0.0
    # v1.1 quirk: an empty answer gets EM 1 but F1 0 against an empty gold ("the" normalises to "")
    assert exact_match("", ["the"]) == 1.0
    assert f1_score("", ["the"]) == 0.0
    with pytest.raises(KbertError, match="ground_truths has no gold answers"):
        f1_score("x", [])


def test_squad_v1_metrics():
    answers = {"q1": ["Denver Broncos"], "q2": ["cat", "the big cat"], "q3": ["x"]}
    preds = {"q1": "the Denver Broncos", "q2": "big dog cat", "extra": "ignored"}
    out = squad_metrics(preds, answers)
    # q1: EM 1, F1 1. q2: EM 0; F1 vs (cat): P=1/3 R=1 -> 1/2, vs (big, cat): P=2/3 R=1 -> 0.8.
    # q3: no prediction -> 0. EM = 100 * 1/3, F1 = 100 * (1 + 0.8) / 3 = 60
    assert out["exact_match"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(60.0)
    assert out["total"] == 3
    json.dumps(out)


@pytest.mark.parametrize(
    "preds, answers, message",
    [
        ({}, {}, "answers is empty"),
        ({"q": "x"}, {"q": []}, r"answers\['q'\] has no gold answers"),
        ({"q": None}, {"q": ["x"]}, r"predictions\['q'\] must be a str"),
        ({"q": "x"}, {"q": ["x", 3]}, r"answers\['q'\]\[1\] must be a str"),
        ([], {"q": ["x"]}, "predictions must be a dict"),
    ],
)
def test_squad_v1_errors(preds, answers, message):
    with pytest.raises(KbertError, match=message):
        squad_metrics(preds, answers)


V2_ANSWERS = {"a1": ["Paris"], "a2": ["blue", "Blue sky"], "n1": [], "n2": []}
V2_PREDS = {"a1": "Paris", "a2": "sky", "n1": "", "n2": "London"}


def test_squad_v2_has_ans_no_ans_split():
    out = squad_v2_metrics(V2_PREDS, V2_ANSWERS)
    # a1: 1/1. a2: EM 0, F1 vs (blue, sky): P=1 R=1/2 -> 2/3. n1: "" vs "" -> 1/1. n2: 0/0.
    assert out == pytest.approx(
        {
            "exact": 100 * 2 / 4,
            "f1": 100 * (1 + 2 / 3 + 1) / 4,
            "total": 4,
            "HasAns_exact": 50.0,
            "HasAns_f1": 100 * (1 + 2 / 3) / 2,
            "HasAns_total": 2,
            "NoAns_exact": 50.0,
            "NoAns_f1": 50.0,
            "NoAns_total": 2,
        }
    )
    assert type(out["total"]) is int
    json.dumps(out)


def test_squad_v2_no_answer_threshold():
    na_probs = {"a1": 0.2, "a2": 0.9, "n1": 0.1, "n2": 0.95}
    out = squad_v2_metrics(V2_PREDS, V2_ANSWERS, na_probs=na_probs, threshold=0.5)
    # above 0.5, a2 turns into "no answer" (wrong: 0) and n2 into "no answer" (right: 1);
    # a1 and n1 keep their raw scores 1 -> exact = f1 = 3/4
    assert out["exact"] == out["f1"] == pytest.approx(75.0)
    assert out["HasAns_exact"] == out["HasAns_f1"] == pytest.approx(50.0)
    assert out["NoAns_exact"] == out["NoAns_f1"] == pytest.approx(100.0)
    # at the default threshold 1.0 nothing changes
    assert squad_v2_metrics(V2_PREDS, V2_ANSWERS, na_probs=na_probs) == squad_v2_metrics(V2_PREDS, V2_ANSWERS)
    with pytest.raises(KbertError, match="na_probs has no entry for question 'n2'"):
        squad_v2_metrics(V2_PREDS, V2_ANSWERS, na_probs={"a1": 0.0, "a2": 0.0, "n1": 0.0})


def test_squad_v2_groups_and_official_quirks():
    # Only answerable questions: no NoAns_* keys. A missing prediction scores 0.
    out = squad_v2_metrics({"a": "x"}, {"a": ["x"], "b": ["y"]})
    assert out == {"exact": 50.0, "f1": 50.0, "total": 2, "HasAns_exact": 50.0, "HasAns_f1": 50.0, "HasAns_total": 2}
    # A gold that normalises to "" is dropped, so "" is the gold, but the question stays HasAns.
    out = squad_v2_metrics({"q": ""}, {"q": ["The"]})
    assert out["HasAns_exact"] == 100.0 and "NoAns_total" not in out
    # An answer to an unanswerable question scores 0 (v2 F1 is 1 only when both are empty).
    out = squad_v2_metrics({"q": "the"}, {"q": []})
    assert out["NoAns_f1"] == 100.0  # "the" normalises to "": it is a "no answer"
    assert squad_v2_metrics({"q": "Paris"}, {"q": []})["NoAns_f1"] == 0.0


# ---------------------------------------------------------------- cross-checks against the libraries


def test_classification_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(60):
        k = int(rng.integers(2, 6))
        n = int(rng.integers(1, 40))
        labels = rng.integers(0, k, n)
        # some trials predict mostly one class to hit the degenerate cases
        preds = rng.integers(0, k, n) if trial % 4 else np.full(n, rng.integers(0, k))
        out = classification_metrics(labels, preds, k)
        average = "binary" if k == 2 else "macro"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert out["accuracy"] == pytest.approx(sk.accuracy_score(labels, preds))
            assert out["f1"] == pytest.approx(sk.f1_score(labels, preds, average=average, zero_division=0.0))
            assert out["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, preds), abs=1e-12)


def test_regression_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(3, 30))
        # small integer ranges make many ties
        labels = rng.integers(0, 5, n).astype(float) if trial % 2 else rng.normal(size=n)
        preds = labels * rng.normal() + rng.integers(0, 4, n)
        if np.ptp(labels) == 0 or np.ptp(preds) == 0:
            continue
        out = regression_metrics(labels, preds)
        assert out["pearson"] == pytest.approx(stats.pearsonr(labels, preds)[0], abs=1e-9)
        assert out["spearman"] == pytest.approx(stats.spearmanr(labels, preds)[0], abs=1e-9)
        assert out["mse"] == pytest.approx(np.mean((labels - preds) ** 2))


_RANDOM_TAGS = ["O", "O", "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC",
                "I-ORG", "B", "I", "E", "S"]  # fmt: skip


def test_ner_matches_seqeval():
    pytest.importorskip("seqeval")
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.metrics import f1_score as seq_f1
    from seqeval.metrics import precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    rnd = random.Random(0)
    true, pred = [], []
    for _ in range(400):
        n = rnd.randint(0, 12)
        true.append([rnd.choice(_RANDOM_TAGS) for _ in range(n)])
        # predictions: gold with a few tags changed, so many entities match
        pred.append([rnd.choice(_RANDOM_TAGS) if rnd.random() < 0.3 else t for t in true[-1]])
    for tags in true + pred:
        # seqeval: inclusive end, bare tags typed "_"
        theirs = [("" if t == "_" else t, s, e + 1) for t, s, e in get_entities(tags)]
        assert entity_spans(tags) == theirs, tags

    ours = ner_metrics(true, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours["precision"] == pytest.approx(precision_score(true, pred))
        assert ours["recall"] == pytest.approx(recall_score(true, pred))
        assert ours["f1"] == pytest.approx(seq_f1(true, pred))
        assert ours["accuracy"] == pytest.approx(accuracy_score(true, pred))
        report = classification_report(true, pred, output_dict=True, zero_division=0)
    for name, row in ours["per_type"].items():
        theirs = report["_" if name == "" else name]
        assert row["precision"] == pytest.approx(theirs["precision"])
        assert row["recall"] == pytest.approx(theirs["recall"])
        assert row["f1"] == pytest.approx(theirs["f1-score"])
        assert row["support"] == theirs["support"]
