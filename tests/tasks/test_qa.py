"""QA prediction and serving are one algorithm: windows, spans, options."""

import numpy as np
import pytest
import tensorflow as tf

from kbert.config import BertConfig
from kbert.data.squad import SquadExample, SquadFeatures, encode_squad, postprocess
from kbert.export.savedmodel import serving_archive
from kbert.model_dir import read_model_dir, save_model
from kbert.tasks import get_task, model_dir_task
from kbert.tasks.qa import select_spans
from kbert.tokenization import BertTokenizer
from kbert.training.finetune import predict

FILLER = ["the", "movie", "film", "plot", "was", "is", "very", "and", "but"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "good", "nice", "who", *FILLER]


def pointing_model(vocab=VOCAB, start="good", end="nice"):
    """A QA model whose start logit is 16 on `start` and end logit 16 on `end`,
    about -1 on [CLS] and exactly 0 on every other token, wherever they are.

    The transformer blocks add nothing (their output projections are zero),
    position and segment embeddings are zero, and `start`, `end` and [CLS]
    have one-hot embeddings, which the LayerNorms turn into orthogonal-ish
    patterns the span head reads.
    """
    from kbert.models import BertEncoder, BertQuestionAnswerer

    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=64)
    model = BertQuestionAnswerer(BertEncoder(config))
    embeddings = model.encoder.embeddings
    table = np.zeros((len(vocab), 16), np.float32)
    for dim, token in enumerate((start, end, "[CLS]")):
        table[vocab.index(token), dim] = 10.0
    embeddings.token_embedding.embeddings.assign(table)
    embeddings.position_embeddings.assign(np.zeros_like(embeddings.position_embeddings.numpy()))
    embeddings.segment_embedding.embeddings.assign(np.zeros_like(embeddings.segment_embedding.embeddings.numpy()))
    for block in model.encoder.transformer_layers:
        for layer in (block.attention_output, block.output_dense):
            layer.kernel.assign(np.zeros_like(layer.kernel.numpy()))
            layer.bias.assign(np.zeros_like(layer.bias.numpy()))
    pattern = (np.eye(16) - 1 / 16) / np.sqrt(15 / 256)  # LayerNorm of a one-hot row
    model.head.dense.kernel.assign(np.stack([pattern[0], pattern[1]], axis=1).astype(np.float32))
    model.head.dense.bias.assign(np.zeros(2, np.float32))
    return model


def filler(n, seed):
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(FILLER, n))


QUESTIONS = ["who was good ?"] * 6
CONTEXTS = [
    filler(40, 0) + " good film nice " + filler(12, 1),  # past the first windows
    "café naïve 日本 " + filler(30, 2) + " Good, very NICE.",  # multi-byte characters before it
    filler(50, 3),  # no pointed token: all spans score 0, ties everywhere
    "",  # no context pieces at all
    "good film film film nice " + filler(20, 4),  # the span needs 5 pieces
    filler(10, 5) + " nice " + filler(3, 6) + " good",  # end before start: no good..nice span
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`(predict, serve)` for a model dir with the given task options."""
    root = tmp_path_factory.mktemp("qa")
    model = pointing_model()
    cache = {}

    def make(**options):
        key = tuple(sorted(options.items()))
        if key not in cache:
            path = root / f"m{len(cache)}"
            task = get_task("qa", **options)
            save_model(model, path / "model", vocab=VOCAB, seq_len=24, task_options=task.options())
            info = read_model_dir(path / "model")
            serving_archive(model, info.tokenizer(), model_dir_task(info), None, info.seq_len, pair=True).write_out(
                str(path / "serving"), verbose=False)
            loaded = tf.saved_model.load(str(path / "serving"))
            signature = loaded.signatures["serving_default"]

            def serve(questions, contexts):
                out = signature(text=tf.constant(questions), text_pair=tf.constant(contexts))
                return {k: v.numpy() for k, v in out.items()}

            cache[key] = (lambda q, c, p=path: predict(p / "model", q, c), serve)
        return cache[key]

    return make


def assert_same(python, served_out):
    for i, p in enumerate(python):
        got = (served_out["answer"][i].decode(), int(served_out["answer_start"][i]),
               int(served_out["answer_end"][i]))
        assert got == (p["answer"], p["start"], p["end"]), (i, p)
        assert abs(float(served_out["score"][i]) - p["score"]) < 1e-4, (i, p)


def test_long_contexts_are_answered_from_every_window(served):
    python_predict, serve = served(doc_stride=8)
    python = python_predict(QUESTIONS, CONTEXTS)
    out = serve(QUESTIONS, CONTEXTS)
    assert_same(python, out)
    # The answer lies past the first window, and serving found it there.
    assert out["windows"][0] > 3 and python[0]["answer"] == "good film nice"
    assert CONTEXTS[0][python[0]["start"]:python[0]["end"]] == "good film nice"
    assert python[0]["score"] == pytest.approx(32.0, abs=1e-3)
    # Character offsets, not bytes, after multi-byte characters.
    assert python[1]["answer"] == "Good, very NICE" and CONTEXTS[1][python[1]["start"]:].startswith("Good")
    assert python[3] == {"answer": "", "score": pytest.approx(python[3]["score"]), "start": -1, "end": -1}
    assert python[4]["answer"] == "good film film film nice"


def test_saved_max_answer_length_and_ties(served):
    python_predict, serve = served(doc_stride=5, max_answer_length=3)
    python = python_predict(QUESTIONS, CONTEXTS)
    assert_same(python, serve(QUESTIONS, CONTEXTS))
    # good..nice needs 5 pieces. "good film" and "good film film" tie at 16 + 0
    # ("good" alone ends on an end logit of -16/15): the first, shorter one wins.
    assert python[4]["answer"] == "good film" and python[4]["score"] == pytest.approx(16.0, abs=1e-3)


def test_saved_version_2_null_threshold(served):
    python_predict, serve = served(doc_stride=8, version_2=True, null_threshold=-5.0)
    python = python_predict(QUESTIONS, CONTEXTS)
    assert_same(python, serve(QUESTIONS, CONTEXTS))
    # A null score of about -2 beats a best span of 0 by more than -5: no answer;
    # not a best span of 32.
    assert [p["answer"] == "" for p in python] == [False, False, True, True, False, False]


def test_old_model_dirs_without_task_options_use_the_defaults(tmp_path):
    model = pointing_model()
    save_model(model, tmp_path / "m", vocab=VOCAB, seq_len=24)
    info = read_model_dir(tmp_path / "m")
    assert info.task_options == {}
    task = model_dir_task(info)
    assert (task.doc_stride, task.max_answer_length, task.version_2) == (128, 30, None)
    assert model_dir_task(info, doc_stride=4).doc_stride == 4  # given options win


def random_features(tok, seed, n_examples=4, seq_len=32, doc_stride=5):
    rng = np.random.default_rng(seed)
    examples = [SquadExample(f"q{i}", "", "Which " * int(rng.integers(1, 4)),
                             filler(int(rng.integers(0, 60)), seed * 10 + i), [], False)
                for i in range(n_examples)]
    features = encode_squad(examples, tok, seq_len=seq_len, doc_stride=doc_stride, training=False)
    return examples, features


@pytest.mark.parametrize("seed", range(4))
def test_select_spans_is_postprocess_in_tensorflow(seed):
    """Same spans and scores as the NumPy post-processing evaluation uses,
    on logits with many exact ties (small integers)."""
    tok = BertTokenizer(VOCAB)
    examples, f = random_features(tok, seed)
    rng = np.random.default_rng(seed)
    shape = f.token_ids.shape
    start = rng.integers(-2, 3, shape).astype(np.float32) if seed % 2 else rng.normal(size=shape).astype(np.float32)
    end = rng.integers(-2, 3, shape).astype(np.float32) if seed % 2 else rng.normal(size=shape).astype(np.float32)
    for max_answer_length, version_2, threshold in ((1, False, 0.0), (4, False, 0.0), (30, True, 0.0),
                                                    (3, True, -1.0), (3, True, 1.0)):
        expected = postprocess(examples, f, start, end, max_answer_length=max_answer_length, version_2=version_2,
                               null_threshold=threshold)
        best = select_spans(start, end, f.max_context, f.token_char_start >= 0, f.example_index, len(examples),
                            max_answer_length, version_2, threshold)
        best = {k: v.numpy() for k, v in best.items()}
        for i, e in enumerate(examples):
            want = expected[e.id]
            row = best["window"][i]
            assert f.example_index[row] == i
            text = ""
            if best["found"][i]:
                text = e.context[f.token_char_start[row, best["start"][i]]:f.token_char_end[row, best["end"][i]]]
            assert (text, float(best["score"][i])) == (want["text"], pytest.approx(want["score"])), (
                max_answer_length, version_2, threshold, i)
            assert float(best["null_score"][i]) == pytest.approx(want["null_score"])
            if best["found"][i]:
                assert (f.token_char_start[row, best["start"][i]], f.token_char_end[row, best["end"][i]]) == (
                    want["start"], want["end"])


def test_pack_windows_is_the_training_layout():
    """encode_squad's windows are the tokenizer's (the serving layout)."""
    tok = BertTokenizer(VOCAB)
    examples, f = random_features(tok, 7, n_examples=6, seq_len=20, doc_stride=3)
    windows = tok.pack_windows(tok.tokenize([e.question for e in examples])[:, :64],
                               tok.tokenize_with_offsets([e.context for e in examples])[0], 20, 3)
    for key in ("token_ids", "segment_ids", "padding_mask", "example_index", "max_context"):
        np.testing.assert_array_equal(windows[key].numpy(), getattr(f, key))
    assert isinstance(f, SquadFeatures)
    np.testing.assert_array_equal(windows["context_index"].numpy() >= 0, f.token_char_start >= 0)
