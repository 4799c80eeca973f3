import json
import os

import numpy as np
import pytest

from conftest import random_inputs
from kbert.config import BertConfig
from kbert.errors import ConfigError, DataError, KbertError, OutputError
from kbert.model_dir import load_model, read_model_dir, save_model
from kbert.training.finetune import evaluate, finetune
from kbert.training.lora import (
    ADAPTER_FILE,
    add_lora,
    apply_adapter,
    load_adapter,
    lora_settings,
    merge_lora,
    read_adapter,
)

WORDS = "good great fine nice bad awful poor dull the movie film plot was is very and but".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
CONFIG = dict(vocab_size=len(VOCAB), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
              max_position_embeddings=64, initializer_range=0.2)  # wide enough for a frozen random
# encoder to pass the signal LoRA learns from (0.02 starves it on a 2-layer toy)


def sentiment_rows(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        word = rng.choice(WORDS[:4] if i % 2 else WORDS[4:8])
        filler = list(rng.choice(WORDS[8:], size=rng.integers(2, 6)))
        filler.insert(rng.integers(len(filler) + 1), word)
        rows.append((" ".join(filler), "pos" if i % 2 else "neg"))
    return rows


def write_tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    return str(path)


def make_encoder_dir(path, seed):
    import keras

    from kbert.models import BertEncoder

    keras.utils.set_random_seed(seed)
    save_model(BertEncoder(BertConfig(**CONFIG)), path, vocab=VOCAB, seq_len=32)
    return str(path)


def classifier(seed=0):
    import keras

    from kbert.models import BertClassifier, BertEncoder

    keras.utils.set_random_seed(seed)
    encoder = BertEncoder(BertConfig(**CONFIG))
    return BertClassifier(encoder, num_classes=2), encoder


def values(model):
    return {v.path: np.array(v.numpy()) for v in model.weights}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One merged and one adapter LoRA run (same seed) on a 2-layer encoder."""
    root = tmp_path_factory.mktemp("lora")
    base = make_encoder_dir(root / "encoder", seed=1)
    train = write_tsv(root / "train.tsv", sentiment_rows(192, 0))
    dev = write_tsv(root / "dev.tsv", sentiment_rows(48, 1))
    args = dict(eval=dev, epochs=3, batch_size=16, lr=5e-3, seq_len=16, progress=False, lora_rank=4,
                lora_targets="query,value")
    merged = finetune("classify", base, train, root / "merged", **args)
    adapter = finetune("classify", base, train, root / "adapter", save_adapter=True, **args)
    return {"root": root, "base": base, "train": train, "dev": dev, "merged": merged, "adapter": adapter}


def test_settings_defaults_and_errors():
    settings = lora_settings(8)  # every Dense of each block and the pooler (see kbert.training.lora)
    assert (settings.rank, settings.alpha, settings.targets) == (8, 8.0, (
        "query", "key", "value", "attention_output", "intermediate", "output", "pooler"))
    assert lora_settings(4, 16, "value,ffn,query").targets == ("query", "value", "intermediate", "output")
    assert len(lora_settings(2, targets=["all"]).targets) == 7
    for bad, message in [(dict(rank=0), "lora_rank"), (dict(rank=2.5), "lora_rank"),
                         (dict(rank=2, alpha=0), "lora_alpha"), (dict(rank=2, targets="query,qk"), "'qk'"),
                         (dict(rank=2, targets=""), "no target")]:
        with pytest.raises(ConfigError, match=message):
            lora_settings(**bad)


def test_lora_training_changes_only_lora_and_head_weights():
    import keras

    model, encoder = classifier()
    counts = add_lora(model, encoder, lora_settings(4, targets="query,value,output"))
    # Per LoRA layer a: in x 4 and b: 4 x out (query, value: 32 -> 32; FFN output: 64 -> 32), 2 blocks;
    # the head: 32 x 2 + 2.
    lora = 2 * (2 * (32 * 4 + 4 * 32) + (64 * 4 + 4 * 32))
    assert counts["trainable"] == lora + 32 * 2 + 2
    assert counts["total"] == model.count_params()
    assert counts["trainable_percent"] == pytest.approx(100 * counts["trainable"] / counts["total"], abs=1e-4)
    trainable = {v.path for v in model.trainable_variables}
    assert trainable == {f"transformer_layer_{i}/{name}/lora_kernel_{ab}" for i in range(2)
                         for name in ("query", "value", "output") for ab in "ab"} | \
        {"classifier/dense/kernel", "classifier/dense/bias"}

    before = values(model)
    inputs = random_inputs(model.encoder.config, batch=8, seq_len=12)
    labels = np.arange(8) % 2
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = model.evaluate(inputs, labels, verbose=0)
    model.fit(inputs, labels, epochs=10, batch_size=4, verbose=0)
    assert model.evaluate(inputs, labels, verbose=0) < 0.5 * start  # it learns (8 examples by heart)
    after = values(model)
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    assert changed == trainable  # every LoRA pair and the head moved; nothing else did


def test_merged_and_unmerged_models_give_the_same_outputs(tmp_path):
    model, encoder = classifier()
    add_lora(model, encoder, lora_settings(4, alpha=8, targets="all"))
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:  # a trained-looking adapter: B is no longer zero
        variable.assign(rng.normal(0, 0.05, variable.shape).astype("float32"))
    inputs = random_inputs(encoder.config, batch=4, seq_len=12)
    lora_out = np.asarray(model(inputs, training=False))

    plain = merge_lora(model)
    assert not any(getattr(layer, "lora_enabled", False) for layer in plain._flatten_layers())
    assert "lora_kernel_a" not in " ".join(v.path for v in plain.weights)
    assert plain.count_params() == model.count_params() - sum(
        int(np.prod(v.shape)) for v in model.weights if v.name.startswith("lora_"))
    np.testing.assert_allclose(np.asarray(plain(inputs, training=False)), lora_out, atol=1e-5)
    # The merged kernel is W + alpha/rank * A @ B.
    query = encoder.transformer_layers[0].query
    w = next(v for v in query.weights if v.name == "kernel").numpy()
    expected = w + 2.0 * query.lora_kernel_a.numpy() @ query.lora_kernel_b.numpy()
    merged = next(v for v in plain.weights if v.path == "transformer_layer_0/query/kernel").numpy()
    np.testing.assert_allclose(merged, expected, atol=1e-6)

    # A model dir of it loads as a plain model with the same outputs.
    save_model(plain, tmp_path / "m", vocab=VOCAB, labels=["neg", "pos"], seq_len=12)
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(np.asarray(loaded(inputs, training=False)), lora_out, atol=1e-5)


def test_finetune_merged_saves_a_plain_model_with_frozen_base_weights(runs):
    result, base = runs["merged"], load_model(runs["base"])
    lora = result["metrics"]["lora"]
    assert lora["rank"] == 4 and lora["alpha"] == 4.0 and lora["targets"] == ["query", "value"]
    assert lora["saved"] == "merged" and len(lora["base_weights_sha256"]) == 64
    expected = 2 * 2 * (32 * 4 + 4 * 32) + 32 * 2 + 2
    assert lora["parameters"]["trainable"] == expected
    assert lora["parameters"]["trainable_percent"] < 5

    saved = load_model(result["model_dir"].path)
    assert not any(getattr(layer, "lora_enabled", False) for layer in saved._flatten_layers())
    old, new = values(base), values(saved)
    for path, value in old.items():
        if path.endswith(("query/kernel", "value/kernel")):
            assert not np.allclose(new[path], value), path  # the merged LoRA update
        else:
            np.testing.assert_array_equal(new[path], value, err_msg=path)  # frozen
    metrics = read_model_dir(result["model_dir"].path).metrics
    assert metrics["lora"]["parameters"] == lora["parameters"]


def test_adapter_round_trip_equals_the_merged_model(runs):
    result = runs["adapter"]
    directory = result["adapter"]
    assert result["model_dir"] is None
    assert sorted(e for e in os.listdir(directory) if not e.startswith(".")) == \
        [ADAPTER_FILE, "logs", "metrics.json", "training_curve.png"]
    metadata, weights = read_adapter(directory)
    assert set(weights) == {f"transformer_layer_{i}/{n}/lora_kernel_{ab}" for i in range(2)
                            for n in ("query", "value") for ab in "ab"} | \
        {"classifier/dense/kernel", "classifier/dense/bias"}
    assert metadata["labels"] == ["neg", "pos"] and metadata["seq_len"] == 16
    assert os.path.getsize(os.path.join(directory, ADAPTER_FILE)) < 20_000
    # A model dir is ~4 bytes a weight; the adapter holds only the trainable ones.
    model_file = os.path.getsize(os.path.join(runs["merged"]["model_dir"].path, "model.keras"))
    assert os.path.getsize(os.path.join(directory, ADAPTER_FILE)) < model_file / 5

    out = runs["root"] / "applied"
    info = apply_adapter(runs["base"], directory, out)
    assert info.task == "classify" and info.labels == ["neg", "pos"] and info.seq_len == 16
    inputs = random_inputs(info.config, batch=4, seq_len=16)
    applied = np.asarray(load_model(out)(inputs, training=False))
    np.testing.assert_allclose(applied, np.asarray(result["model"](inputs, training=False)), atol=1e-5)
    with pytest.raises(DataError, match="a LoRA adapter, not a model directory; make one with kbert apply-adapter"):
        evaluate(directory, runs["dev"])
    loaded = load_adapter(runs["base"], os.path.join(directory, ADAPTER_FILE))["model"]
    np.testing.assert_allclose(np.asarray(loaded(inputs, training=False)), applied, atol=1e-5)
    again = evaluate(out, runs["dev"])
    assert again["accuracy"] == pytest.approx(result["metrics"]["eval"]["accuracy"])


def test_adapter_refuses_another_base(runs):
    other = make_encoder_dir(runs["root"] / "other", seed=2)  # same architecture, other weights
    with pytest.raises(ConfigError, match="made for another base model"):
        load_adapter(other, runs["adapter"]["adapter"])
    assert not (runs["root"] / "wrong").exists()


def test_cli_lora_flags_adapter_and_wrong_base(runs, tmp_path):
    from click.testing import CliRunner

    from kbert.cli import main

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    common = ["finetune", "classify", "--init", runs["base"], "--train", runs["train"], "--epochs", 1,
              "--batch-size", 32, "--seq-len", 16, "--lr", 5e-3]
    result = run(*common, "--out", tmp_path / "a", "--lora-rank", 2, "--lora-alpha", 4,
                 "--lora-targets", "query,ffn", "--save-adapter")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'a'}" in result.output
    metadata, _ = read_adapter(tmp_path / "a")
    assert metadata["lora"] == {"rank": 2, "alpha": 4.0, "targets": ["query", "intermediate", "output"]}

    # Without --lr and --lora-targets: LoRA's own peak lr and every layer.
    result = run(*common[:-2], "--out", tmp_path / "d", "--lora-rank", 2, "--save-adapter")
    assert result.exit_code == 0, result.output
    metadata, _ = read_adapter(tmp_path / "d")
    assert metadata["lora"]["targets"] == ["query", "key", "value", "attention_output", "intermediate", "output",
                                           "pooler"]
    with open(tmp_path / "d" / "metrics.json", encoding="utf-8") as f:
        assert json.load(f)["lr"] == 2e-3

    result = run("apply-adapter", runs["base"], tmp_path / "a", "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert read_model_dir(tmp_path / "m").task == "classify"

    other = make_encoder_dir(tmp_path / "other", seed=3)
    result = run("apply-adapter", other, tmp_path / "a", "--out", tmp_path / "bad")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "made for another base model" in lines[0]
    assert not (tmp_path / "bad").exists()

    result = run(*common, "--out", tmp_path / "x", "--save-adapter")
    assert result.exit_code == 2 and "save_adapter: needs lora_rank" in result.output
    result = run(*common, "--out", tmp_path / "x", "--lora-rank", 2, "--lora-targets", "query,attn")
    assert result.exit_code == 2 and "unknown target 'attn'" in result.output


def test_output_guard_keeps_model_dirs_and_adapters_apart(runs):
    args = dict(epochs=1, seq_len=16, progress=False, lora_rank=2)
    # An adapter is not written over a model directory, nor a model dir over an adapter.
    with pytest.raises(OutputError, match="is a kbert model directory, not a LoRA adapter"):
        finetune("classify", runs["base"], runs["train"], runs["merged"]["model_dir"].path, save_adapter=True,
                 **args)
    with pytest.raises(OutputError, match="is a kbert LoRA adapter, not a model directory"):
        finetune("classify", runs["base"], runs["train"], runs["adapter"]["adapter"], **args)
    with pytest.raises(KbertError, match="lora_alpha: needs lora_rank"):
        finetune("classify", runs["base"], runs["train"], runs["root"] / "x", lora_alpha=8, progress=False)


def test_foreign_or_broken_adapter_files_are_one_data_error(tmp_path):
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2, "float32")}, tmp_path / "plain.safetensors")
    with pytest.raises(DataError, match="not a kbert LoRA adapter"):
        read_adapter(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(DataError, match="not a safetensors file"):
        read_adapter(tmp_path / "junk.safetensors")
    with pytest.raises(DataError, match="adapter file not found"):
        read_adapter(tmp_path)
