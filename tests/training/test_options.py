"""Task options checked by name and prediction inputs from arguments and files
(`kbert.training.options`, used by the API and the CLI alike)."""

import json

import pytest

from kbert.errors import ConfigError, DataError, KbertError
from kbert.training.options import option_defaults, prediction_inputs, read_inputs, task_options


def test_option_defaults_are_the_task_signatures():
    from kbert.tasks import QaTask

    qa = option_defaults("qa")
    assert qa["doc_stride"] == QaTask().doc_stride and "eval_articles" in qa and "self" not in qa
    with pytest.raises(KbertError, match="task: expected one of"):
        option_defaults("summarize")


def test_task_options_drop_unset_and_name_what_does_not_apply():
    assert task_options("classify", {"text_column": "review", "pair_column": None}) == {"text_column": "review"}
    with pytest.raises(ConfigError, match=r"^doc_stride: does not apply to a classify model \(its options: "):
        task_options("classify", {"doc_stride": 64})
    # On the eval split `articles` slices the file being evaluated.
    assert task_options("qa", {"articles": "0:3"}, split="eval") == {"eval_articles": "0:3"}
    assert task_options("qa", {"articles": "0:3"}, split="train") == {"articles": "0:3"}


def test_api_rejects_an_option_of_another_task_with_one_line(tmp_path):
    from kbert.training.finetune import evaluate

    # Checked before the model dir is loaded: a ConfigError, not a TypeError from a constructor.
    with pytest.raises(ConfigError, match="tag_column: does not apply"):
        evaluate(_classify_dir(tmp_path), tmp_path / "dev.tsv", tag_column=2)


def _classify_dir(tmp_path):
    from kbert.config import BertConfig
    from kbert.model_dir import save_model
    from kbert.models import BertClassifier, BertEncoder

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    config = BertConfig(vocab_size=len(vocab), hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16,
                        max_position_embeddings=16)
    path = tmp_path / "model"
    save_model(BertClassifier(BertEncoder(config), 2), path, vocab=vocab, labels=["x", "y"], seq_len=8)
    return path


def test_read_inputs_txt_tsv_and_qa_columns(tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_text("first\n\n  \nsecond\n", encoding="utf-8")
    assert read_inputs(txt, "classify") == (["first", "second"], None)
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("sentence1\tsentence2\nA\tB\nC\tD\n", encoding="utf-8")
    assert read_inputs(tsv, "classify", text_column="sentence1", pair_column="sentence2") == (["A", "C"], ["B", "D"])
    # QA files name their columns question and context by default.
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text("".join(json.dumps({"question": f"q{i}", "context": f"c{i}"}) + "\n" for i in range(2)),
                     encoding="utf-8")
    assert read_inputs(jsonl, "qa") == (["q0", "q1"], ["c0", "c1"])


def test_prediction_inputs_join_arguments_and_file(tmp_path):
    model = _classify_dir(tmp_path)
    txt = tmp_path / "in.txt"
    txt.write_text("from the file\n", encoding="utf-8")
    assert prediction_inputs(model, ["given"], (), txt) == (["given", "from the file"], None)
    assert prediction_inputs(model, ["a", "b"], ["c", "d"]) == (["a", "b"], ["c", "d"])
    with pytest.raises(DataError, match=r"in.txt: no second-text column, but the other texts have pairs"):
        prediction_inputs(model, ["a"], ["b"], txt)
    with pytest.raises(KbertError, match="got 2 texts but 1 pairs"):
        prediction_inputs(model, ["a", "b"], ["c"])
    with pytest.raises(KbertError, match="nothing to predict"):
        prediction_inputs(model)
