"""MediaPipe Tasks metadata in kbert's TFLite files (kbert/export/metadata.py):
written by MediaPipe's writers, read back, run by MediaPipe's TextClassifier
from raw text. The tests that need the `mediapipe` package skip without it."""

import numpy as np
import pytest

from training.test_finetune import VOCAB, encoder_dir, sentiment_rows, write_tsv  # noqa: F401
from kbert.errors import ConfigError
from kbert.export import export
from kbert.export import metadata
from kbert.export.verify import check_rows


@pytest.fixture(scope="module")
def classifier_export(tmp_path_factory, encoder_dir):  # noqa: F811
    from kbert.training.finetune import finetune

    pytest.importorskip("mediapipe.tasks.python.text")
    directory = tmp_path_factory.mktemp("mediapipe")
    train = write_tsv(directory / "train.tsv", sentiment_rows(256, 0))
    dev = write_tsv(directory / "dev.tsv", sentiment_rows(64, 1))
    finetune("classify", encoder_dir, train, directory / "model", epochs=6, batch_size=16, lr=3e-3, seq_len=16,
             progress=False)
    out = directory / "export"
    report = export(str(directory / "model"), out, formats=["tflite"], quantize=["float32", "dynamic"], eval=dev,
                    latency_runs=1, progress=lambda m: None)
    return out, report


def test_export_writes_metadata_mediapipe_classifies_raw_text(classifier_export):
    out, report = classifier_export
    assert report["passed"], report["failures"]
    rows = {r["artifact"]: r for r in report["artifacts"]}
    for name in ("tflite_float32", "tflite_dynamic"):
        mp = rows[name]["mediapipe"]
        assert mp["metadata"] is True and mp["kind"] == "classifier", mp
        assert mp["examples"] == mp["ascii_texts"] == 64 and mp["litert_agreement"] == 1.0, mp
        assert mp["litert_agreement_ascii"] == 1.0
        assert mp["bytes"] > mp["bytes_before"] and mp["mediapipe"]
        assert rows[name]["bytes"] == mp["bytes"]  # the verified file is the one with metadata
    # The tiny vocabulary is all ASCII: MediaPipe's tokens are kbert's, so float32 matches Keras.
    assert rows["tflite_float32"]["mediapipe"]["agreement"] == 1.0
    assert rows["tflite_float32"]["mediapipe"]["max_abs_diff"] < 1e-4
    assert rows["tflite_float32"]["agreement"] == 1.0 and rows["tflite_float32"]["max_abs_diff"] < 1e-4

    path = out / "tflite" / "model_float32.tflite"
    meta = metadata.read_metadata(path)
    assert sorted(meta["input_names"]) == ["ids", "mask", "segment_ids"]
    assert meta["output_names"] == ["probabilities"] and meta["min_parser_version"] == "1.1.0"
    assert meta["files"]["vocab.txt"].decode().splitlines() == VOCAB
    assert meta["files"]["labels.txt"].decode().splitlines() == ["neg", "pos"]

    # MediaPipe from raw text: upper case and punctuation as kbert's tokenizer handles them.
    scores = metadata.classify(path, ["Great, NICE film!", "the plot was AWFUL and dull", ""])
    assert scores.shape == (3, 2) and np.allclose(scores.sum(-1), 1.0, atol=1e-5)
    assert scores[:2].argmax(-1).tolist() == [1, 0]


def test_litert_still_runs_the_file_and_returns_probabilities(classifier_export):
    from ai_edge_litert.interpreter import Interpreter

    from kbert.tokenization import BertTokenizer

    out, _ = classifier_export
    runner = Interpreter(model_path=str(out / "tflite" / "model_dynamic.tflite")).get_signature_runner()
    packed = {k: v.numpy() for k, v in BertTokenizer(str(out / "vocab.txt"))(["a very good film"], seq_len=16).items()}
    result = runner(ids=packed["token_ids"], mask=packed["padding_mask"], segment_ids=packed["segment_ids"])
    assert list(result) == ["probabilities"]
    assert result["probabilities"].shape == (1, 2) and abs(result["probabilities"].sum() - 1) < 1e-5
    assert result["probabilities"].argmax() == 1
    card = (out / "model_card.json").read_text()
    assert '"probabilities"' in card and '"logits"' not in card


def test_write_metadata_refuses_what_mediapipe_would_run_wrong(classifier_export, tmp_path):
    out, _ = classifier_export
    plain = out / "tflite" / "model_float32.tflite"
    with pytest.raises(ConfigError, match="already carries TFLite metadata"):
        metadata.write_metadata(plain, "classifier", VOCAB, ["neg", "pos"])
    with pytest.raises(ConfigError, match="cased model"):
        metadata.write_metadata(plain, "classifier", VOCAB, ["neg", "pos"], lowercase=False)
    with pytest.raises(ConfigError, match="kind"):
        metadata.write_metadata(plain, "tagger", VOCAB, ["neg", "pos"])


def test_min_parser_version_follows_the_newest_schema_member():
    pytest.importorskip("mediapipe")
    import flatbuffers
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    def version(**subgraph):
        graph = fb.SubGraphMetadataT()
        graph.inputTensorMetadata, graph.outputTensorMetadata = [fb.TensorMetadataT()], [fb.TensorMetadataT()]
        for key, value in subgraph.items():
            setattr(graph, key, value)
        model = fb.ModelMetadataT()
        model.subgraphMetadata = [graph]
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), b"M001")
        return metadata.min_parser_version(builder.Output())

    def unit(options_type, options):
        u = fb.ProcessUnitT()
        u.optionsType, u.options = options_type, options
        return u

    def file(**fields):
        f = fb.AssociatedFileT()
        f.name = "x.txt"
        for key, value in fields.items():
            setattr(f, key, value)
        return f

    assert version() == "1.0.0"
    assert version(associatedFiles=[file(type=fb.AssociatedFileType.VOCABULARY)]) == "1.0.1"
    bert = unit(fb.ProcessUnitOptions.BertTokenizerOptions, fb.BertTokenizerOptionsT())
    assert version(inputProcessUnits=[bert]) == "1.1.0"
    assert version(outputTensorGroups=[fb.TensorGroupT()]) == "1.2.0"
    regex = unit(fb.ProcessUnitOptions.RegexTokenizerOptions, fb.RegexTokenizerOptionsT())
    assert version(inputProcessUnits=[bert, regex]) == "1.2.1"
    assert version(associatedFiles=[file(version="2")]) == "1.4.1"
    assert version(customMetadata=[fb.CustomMetadataT()], inputProcessUnits=[bert]) == "1.5.0"


def test_which_exports_mediapipe_can_run():
    assert metadata.mediapipe_kind("classify", labels=["neg", "pos"]) == ("classifier", None)
    assert metadata.mediapipe_kind("embed") == ("embedder", None)
    for args, reason in [(("classify", True, True, ["a", "b"]), "pair"), (("classify", True, False, None), "regressor"),
                         (("classify", False, False, ["a", "b"]), "cased"), (("ner",), "no text task"),
                         (("qa",), "no text task"), (("embed", False), "cased")]:
        kind, why = metadata.mediapipe_kind(*args)
        assert kind is None and reason in why, (args, why)


def test_without_mediapipe_the_file_is_left_as_it_was(tmp_path, monkeypatch):
    def missing():
        raise metadata.MetadataError(f"MediaPipe metadata needs the mediapipe package: {metadata.REQUIREMENT}")

    monkeypatch.setattr(metadata, "_writers", missing)
    path = tmp_path / "model.tflite"
    path.write_bytes(b"TFL3 not touched")
    step = metadata.ExportMetadata("classify", None, None, VOCAB, ["neg", "pos"], True, False, 16, ["good"])
    row = step(path)
    assert row == {"metadata": False, "reason": row["reason"]} and "kbert[mediapipe]" in row["reason"]
    assert path.read_bytes() == b"TFL3 not touched"
    pair = metadata.ExportMetadata("classify", None, None, VOCAB, ["neg", "pos"], True, True, 16)(path)
    assert pair["metadata"] is False and "pair" in pair["reason"]


def test_a_mediapipe_disagreement_fails_the_export():
    rows = [{"artifact": "keras", "metric": 90.0},
            {"artifact": "tflite_dynamic", "metric": 90.0, "agreement": 1.0, "mediapipe": {"litert_agreement_ascii": 0.95}},
            {"artifact": "tflite_int8", "metric": 90.0, "agreement": 1.0, "mediapipe": {"litert_agreement": 0.5, "litert_agreement_ascii": 0.98}},
            {"artifact": "tflite_float16", "metric": 90.0, "agreement": 1.0, "mediapipe": {"metadata": False}}]
    limits = {"tflite_dynamic": 0.99, "tflite_float16": 0.995, "tflite_int8_metric_drop": 1.0, "mediapipe": 0.99}
    failures = check_rows(rows, limits)
    assert len(failures) == 2 and all("MediaPipe" in f for f in failures), failures
    assert failures[0].startswith("tflite_dynamic:") and failures[1].startswith("tflite_int8:")
    assert check_rows(rows, {**limits, "mediapipe": 0.9}) == []


def test_report_says_why_no_file_has_metadata():
    from kbert.export.run import report_markdown

    def report(tflite_mediapipe):
        row = {"bytes": 1, "metric": 90.0, "agreement": 1.0, "max_abs_diff": 0.0, "latency_ms": 1.0}
        rows = [{**row, "artifact": "keras", "bytes": None},
                *({**row, "artifact": f"tflite_{m}", "mediapipe": tflite_mediapipe} for m in ("float32", "dynamic"))]
        return report_markdown({"model_dir": "m", "task": "classify", "seq_len": 16, "eval": {"examples": 4, "file": "d"},
                                "artifacts": rows, "passed": True, "failures": []})

    reason = "MediaPipe metadata needs the mediapipe package: pip install 'kbert[mediapipe]'"
    assert f"MediaPipe metadata: not written ({reason})." in report({"metadata": False, "reason": reason})
    assert "MediaPipe metadata" not in report({"metadata": True, "litert_agreement": 1.0})


def test_embedder_export_mediapipe_embeds_raw_text(tmp_path):
    """An `embed` model: MediaPipe's TextEmbedder gives the Keras vectors (cosine) on
    the ASCII texts export checks it on; accented text may tokenize differently."""
    pytest.importorskip("mediapipe.tasks.python.text")
    from kbert.config import BertConfig
    from kbert.export.run import EMBED_TEXTS
    from kbert.model_dir import save_model
    from kbert.tasks import registry

    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    save_model(registry.build("embed", config), tmp_path / "embed", vocab=VOCAB, seq_len=16)
    report = export(str(tmp_path / "embed"), tmp_path / "out", formats=["tflite"], quantize=["float32"],
                    latency_runs=1, progress=lambda m: None)
    assert report["passed"], report["failures"]
    mp = report["artifacts"][1]["mediapipe"]
    assert mp["metadata"] is True and mp["kind"] == "embedder", mp
    assert mp["examples"] == len(EMBED_TEXTS) and mp["ascii_texts"] == sum(t.isascii() for t in EMBED_TEXTS)
    assert mp["litert_agreement_ascii"] == 1.0 and mp["mean_cosine"] > 0.99, mp
    path = tmp_path / "out" / "tflite" / "model_float32.tflite"
    assert metadata.read_metadata(path)["output_names"] == ["embedding"]
    vectors = metadata.embed(path, ["the movie was good", "awful plot", ""])
    assert vectors.shape == (3, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # normalize=True
