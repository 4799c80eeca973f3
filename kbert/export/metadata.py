"""MediaPipe Tasks metadata in kbert's TFLite files: raw text in, on Android,
the web and Python, with no tokenizer code in the app.

MediaPipe's `TextClassifier` and `TextEmbedder` (`com.google.mediapipe:tasks-text`,
`@mediapipe/tasks-text`, `mediapipe` on PyPI) run a BERT .tflite from a raw
string when the file carries TFLite model metadata: its three int32 inputs
named `ids`, `mask` and `segment_ids`, a `BertTokenizerOptions` process unit
with the WordPiece vocabulary as an associated file and, for a classifier, the
label names as an associated file of the output tensor. The file stays what it
was for LiteRT (the metadata is a buffer and a zip appended to the flatbuffer):
kbert's verification runs it with `ai_edge_litert` as before.

The metadata is written by MediaPipe's own writers
(`mediapipe.tasks.python.metadata.metadata_writers`). In mediapipe 1.2.3 they
fail to import: the wheel lacks the compiled `_pywrap_metadata_version`, whose
one function computes the metadata's minimum parser version.
`min_parser_version` below is that function ported from MediaPipe's
`metadata_version.cc`, put in place only while the writers are imported when
the compiled module is missing.

What MediaPipe does with the file (measured with mediapipe 1.2.3 and read in
its sources):
- Its BERT preprocessor ASCII-lowercases every text, then splits on
  whitespace and punctuation and runs WordPiece (no accent stripping, no
  Unicode lowercasing): a cased model (`lowercase=False`) is refused; an
  uncased one tokenizes ASCII text as kbert does and can differ on accented or
  non-Latin capitals.
- It packs one text (`[CLS] text [SEP]`, segment 0): pair classifiers are
  not supported.
- It reports the classifier's output tensor as the scores: kbert's classify
  TFLite outputs `probabilities` (a softmax in the graph,
  `kbert.tasks.serving.classify.ids_outputs`). A score calibration in the
  metadata is an independent sigmoid per class, not a softmax.
- The embedder reports every output tensor as an embedding (flattened), so
  only `[1, dim]` outputs make sense: the `embed` task's `embedding`.

Examples:
```python
from kbert.export.metadata import write_metadata

write_metadata("exports/sst2/tflite/model_dynamic.tflite", "classifier",
               vocab="exports/sst2/vocab.txt", labels=["negative", "positive"])
```
"""

import io
import os
import sys
import tempfile
import types

import numpy as np

from kbert.errors import ConfigError, KbertError

KINDS = ("classifier", "embedder")
INPUT_NAMES = ("ids", "mask", "segment_ids")
REQUIREMENT = "pip install 'kbert[mediapipe]'"
_PYWRAP = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


class MetadataError(KbertError):
    """The TFLite file cannot carry MediaPipe metadata (or mediapipe is missing)."""


def mediapipe_kind(task, lowercase=True, pair=False, labels=None):
    """The MediaPipe task a kbert export can carry metadata for.

    Args:
        task: the exported task (`classify`, `embed`, `ner`, `qa`, `encoder`).
        lowercase: whether the model's tokenizer lowercases.
        pair: whether the classifier takes a text pair.
        labels: label names (a classifier without them is a regressor).

    Returns:
        `(kind, None)` with kind "classifier" or "embedder", or `(None, reason)`.
    """
    if task == "classify":
        if not labels:
            return None, "a regressor (one score, no labels): MediaPipe's TextClassifier ranks labels"
        if pair:
            return None, "a text-pair classifier: MediaPipe's BERT preprocessor packs one text"
        kind = "classifier"
    elif task == "embed":
        kind = "embedder"
    else:
        return None, f"MediaPipe Tasks has no text task for a {task} model (classify and embed only)"
    if not lowercase:
        return None, "a cased model: MediaPipe's BERT preprocessor lowercases every text"
    return kind, None


def min_parser_version(metadata_buffer):
    """The minimum metadata parser version a metadata flatbuffer needs.

    A port of `GetMinimumMetadataParserVersion` (MediaPipe,
    mediapipe/tasks/cc/metadata/metadata_version.cc): the newest schema
    member present decides.

    Args:
        metadata_buffer: bytes of a `ModelMetadata` flatbuffer.

    Returns:
        The version as "major.minor.patch".
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    versions = [(1, 0, 0)]

    def files(items):
        for f in items or []:
            if f.type == fb.AssociatedFileType.VOCABULARY:
                versions.append((1, 0, 1))
            if f.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
                versions.append((1, 4, 0))
            if f.version is not None:
                versions.append((1, 4, 1))

    def units(items):
        tokenizers = {fb.ProcessUnitOptions.BertTokenizerOptions: (1, 1, 0),
                      fb.ProcessUnitOptions.SentencePieceTokenizerOptions: (1, 1, 0),
                      fb.ProcessUnitOptions.RegexTokenizerOptions: (1, 2, 1)}
        for unit in items or []:
            if unit.optionsType in tokenizers:
                versions.append(tokenizers[unit.optionsType])

    def tensor(t):
        files(t.associatedFiles)
        units(t.processUnits)
        if t.content is not None and t.content.contentPropertiesType == fb.ContentProperties.AudioProperties:
            versions.append((1, 3, 0))

    root = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(bytes(metadata_buffer), 0))
    for graph in root.subgraphMetadata or []:
        for t in (graph.inputTensorMetadata or []) + (graph.outputTensorMetadata or []):
            tensor(t)
        files(graph.associatedFiles)
        for present, version in ((graph.inputProcessUnits, (1, 1, 0)), (graph.outputProcessUnits, (1, 1, 0)),
                                 (graph.inputTensorGroups, (1, 2, 0)), (graph.outputTensorGroups, (1, 2, 0)),
                                 (graph.customMetadata, (1, 5, 0))):
            if present is not None:
                versions.append(version)
        units(graph.inputProcessUnits)
        units(graph.outputProcessUnits)
    files(root.associatedFiles)
    return ".".join(str(v) for v in max(versions))


def _writers():
    """MediaPipe's `metadata_writer` module, importable without the compiled
    `_pywrap_metadata_version` (missing from the mediapipe 1.2.3 wheel)."""
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        raise MetadataError(f"MediaPipe metadata needs the mediapipe package: {REQUIREMENT}") from None
    try:
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
        return metadata_writer
    except ImportError as e:
        if "_pywrap_metadata_version" not in str(e) and "mediapipe.tasks.cc" not in str(e):
            raise MetadataError(f"mediapipe's metadata writers do not import: {e}") from None
    # Put the ported function where the writer looks for it, import the
    # writer (it binds the module), and take the stand-ins out again.
    parents = ["mediapipe.tasks.cc", "mediapipe.tasks.cc.metadata", "mediapipe.tasks.cc.metadata.python"]
    added = [name for name in [*parents, _PYWRAP] if name not in sys.modules]
    shim = types.ModuleType(_PYWRAP)
    shim.GetMinimumMetadataParserVersion = min_parser_version
    for name in parents:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[_PYWRAP] = shim
    sys.modules[parents[-1]]._pywrap_metadata_version = shim
    try:
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
    finally:
        for name in added:
            sys.modules.pop(name, None)
    return metadata_writer


def _writer_class(writers):
    """MediaPipe's `MetadataWriter`, less its `__del__`: that deletes the
    writer's temporary folder and fails when it runs at interpreter exit
    (the writer outlives the call there); `write_metadata` cleans up itself."""

    class Writer(writers.MetadataWriter):
        def __del__(self):
            pass

    return Writer


def _tensors(model):
    """(input tensor name by kbert input name, [(output tensor name, signature
    output name, shape)]) of a kbert ids-in .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    runner = interpreter.get_signature_runner("serving_default")
    details = {d["index"]: d for d in interpreter.get_input_details() + interpreter.get_output_details()}
    inputs = {name: details[d["index"]] for name, d in runner.get_input_details().items()}
    outputs = {details[d["index"]]["name"]: (name, tuple(int(x) for x in d["shape"]))
               for name, d in runner.get_output_details().items()}
    # The file's order of outputs, which the metadata must follow.
    order = [d["name"] for d in interpreter.get_output_details()]
    return inputs, [(t, *outputs[t]) for t in order]


def write_metadata(path, kind, vocab, labels=None, lowercase=True, seq_len=None):
    """Write MediaPipe Tasks metadata into a kbert TFLite file (in place, atomically).

    Args:
        path: a kbert ids-in `.tflite` (inputs `ids`, `mask`, `segment_ids`
            int32 `[1, seq_len]`).
        kind: "classifier" (MediaPipe `TextClassifier`: one output of class
            probabilities, `[1, len(labels)]`) or "embedder" (`TextEmbedder`:
            every output a `[1, dim]` embedding, named as in the signature).
        vocab: the WordPiece vocabulary: a list of tokens or a vocab.txt path.
        labels: label names in id order (classifier).
        lowercase: whether the model's tokenizer lowercases; False is refused
            (MediaPipe lowercases every text).
        seq_len: the length the inputs must have (default: any).

    Returns:
        A dict: `kind`, `bytes_before`, `bytes`, `min_parser_version`,
        `mediapipe` (the writer's version).

    Raises:
        ConfigError: the arguments or the file do not fit MediaPipe.
        MetadataError: mediapipe is not installed.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
    if not lowercase:
        raise ConfigError(f"{path}: a cased model; MediaPipe's BERT preprocessor lowercases every text, "
                          "so its tokens would not be the model's")
    if kind == "classifier" and not labels:
        raise ConfigError(f"{path}: a MediaPipe classifier needs its label names")
    writers = _writers()
    import mediapipe

    with open(path, "rb") as f:
        model = f.read()
    if read_metadata(path) is not None:
        raise ConfigError(f"{path}: already carries TFLite metadata (write it into a file fresh from the converter)")
    inputs, outputs = _tensors(model)
    if sorted(inputs) != sorted(INPUT_NAMES):
        raise ConfigError(f"{path}: inputs {sorted(inputs)}, expected {list(INPUT_NAMES)}")
    for name, d in inputs.items():
        if seq_len is not None and tuple(d["shape"]) != (1, seq_len):
            raise ConfigError(f"{path}: input {name} is {list(d['shape'])}, expected [1, {seq_len}]")
    if kind == "classifier":
        if len(outputs) != 1 or outputs[0][1] != "probabilities" or outputs[0][2] != (1, len(labels)):
            raise ConfigError(f"{path}: a classifier needs one output `probabilities` [1, {len(labels)}] "
                              f"(MediaPipe reports it as the scores), found "
                              f"{[(name, list(shape)) for _, name, shape in outputs]}")
    elif any(len(shape) != 2 or shape[0] != 1 for _, _, shape in outputs):
        raise ConfigError(f"{path}: an embedder's outputs must be [1, dim] vectors (MediaPipe flattens "
                          f"each into one embedding), found {[(n, list(s)) for _, n, s in outputs]}")

    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = os.path.join(tmp, "vocab.txt")  # the associated file's name in the metadata
        tokens = vocab if isinstance(vocab, (list, tuple)) else _read_lines(vocab)
        with open(vocab_file, "w", encoding="utf-8") as f:
            f.write("".join(f"{t}\n" for t in tokens))
        writer = _writer_class(writers)(model)
        try:
            tensor = {name: d["name"] for name, d in inputs.items()}
            writer.add_bert_text_input(writers.BertTokenizer(vocab_file), tensor["ids"], tensor["mask"],
                                       tensor["segment_ids"])
            if kind == "classifier":
                writer.add_general_info("kbert text classifier",
                                        f"kbert classify export: raw text in, probabilities of {len(labels)} "
                                        f"labels out; uncased WordPiece, seq_len {seq_len or '?'}.")
                writer.add_classification_output(writers.Labels().add([str(x) for x in labels]),
                                                 name="probabilities",
                                                 description="Probability of each label (softmax).")
            else:
                writer.add_general_info("kbert text embedder",
                                        f"kbert embed export: raw text in, sentence embedding out; uncased "
                                        f"WordPiece, seq_len {seq_len or '?'}.")
                for _, name, _ in outputs:
                    writer.add_feature_output(name=name, description="Sentence embedding.")
            blob, _ = writer.populate()
        finally:
            writer._temp_folder.cleanup()
    from kbert.io import atomic_file

    with atomic_file(path) as tmp_path:
        with open(tmp_path, "wb") as f:
            f.write(blob)
    return {"kind": kind, "bytes_before": len(model), "bytes": len(blob),
            "min_parser_version": read_metadata(path)["min_parser_version"],
            "mediapipe": getattr(mediapipe, "__version__", "?")}


def read_metadata(path):
    """The metadata of a .tflite as a dict (`name`, `min_parser_version`,
    `input_names`, `output_names`, `files`: the packed files' bytes by name),
    or None when it has none. Reads with the flatbuffer schema classes of the
    mediapipe wheel (no MediaPipe runtime)."""
    import zipfile

    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
        from mediapipe.tasks.metadata import schema_py_generated as schema
    except ImportError:
        raise MetadataError(f"reading TFLite metadata needs the mediapipe package: {REQUIREMENT}") from None

    with open(path, "rb") as f:
        blob = f.read()
    model = schema.Model.GetRootAsModel(blob, 0)
    buffer = None
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name() == b"TFLITE_METADATA":
            buffer = model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
    if buffer is None:
        return None
    meta = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(buffer, 0))
    graph = meta.subgraphMetadata[0]
    name = (lambda s: s.decode() if isinstance(s, bytes) else s)
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            files = {n: z.read(n) for n in z.namelist()}
    except zipfile.BadZipFile:
        files = {}
    return {"name": name(meta.name), "min_parser_version": name(meta.minParserVersion),
            "input_names": [name(t.name) for t in graph.inputTensorMetadata],
            "output_names": [name(t.name) for t in graph.outputTensorMetadata], "files": files}


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def classify(path, texts):
    """Every label's score `[len(texts), classes]` from MediaPipe's TextClassifier."""
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.text import text_classifier

    options = text_classifier.TextClassifierOptions(base_options=BaseOptions(model_asset_path=os.fspath(path)))
    rows = []
    with text_classifier.TextClassifier.create_from_options(options) as classifier:
        for text in texts:
            categories = classifier.classify(text).classifications[0].categories
            row = np.zeros(len(categories))
            for c in categories:
                row[c.index] = c.score
            rows.append(row)
    return np.array(rows)


def embed(path, texts):
    """The first head's embedding `[len(texts), dim]` from MediaPipe's TextEmbedder."""
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.text import text_embedder

    options = text_embedder.TextEmbedderOptions(base_options=BaseOptions(model_asset_path=os.fspath(path)))
    with text_embedder.TextEmbedder.create_from_options(options) as embedder:
        return np.array([embedder.embed(text).embeddings[0].embedding for text in texts], np.float64)


class ExportMetadata:
    """What `kbert.export` does to each TFLite file it writes, before the
    file is verified: write the MediaPipe metadata (when the model and the
    installed packages allow) and, on the evaluation texts, compare
    MediaPipe's answers from raw text with kbert's Keras model and with the
    same file run by `ai_edge_litert` on kbert's tokens.

    Args:
        task: the exported task name.
        model: the Keras model exported.
        tokenizer: the model dir's `BertTokenizer`.
        vocab: its vocabulary (a list of tokens).
        labels: label names, or None.
        lowercase: whether the tokenizer lowercases.
        pair: whether the model takes text pairs.
        seq_len: the TFLite input length.
        texts: raw texts to check MediaPipe on (none: no check).

    Calling it with a .tflite path returns the report row's `mediapipe`
    entry: `metadata` (written or not), `reason` when not, the
    `write_metadata` figures, and the check's `examples`, `agreement` and
    `max_abs_diff` (and `max_abs_diff_ascii`) of the probabilities against
    Keras (classifier) or `min_cosine` (`min_cosine_ascii`) and `mean_cosine`
    (embedder), and `litert_agreement`: the fraction of texts
    where MediaPipe gives what the same file gives on kbert's tokens (same
    label, or cosine >= 0.999): it isolates MediaPipe's tokenizer from
    quantization. `litert_agreement_ascii` is the same over the ASCII-only
    texts (`ascii_texts` of them), where MediaPipe's tokenizer must be
    kbert's; `DEFAULT_THRESHOLDS["mediapipe"]` bounds it. On other texts
    MediaPipe keeps accents and non-ASCII capitals that kbert removes.
    """

    def __init__(self, task, model, tokenizer, vocab, labels, lowercase, pair, seq_len, texts=()):
        self.kind, self.reason = mediapipe_kind(task, lowercase, pair, labels)
        self.model, self.tokenizer, self.vocab, self.labels = model, tokenizer, list(vocab), labels
        self.lowercase, self.seq_len, self.texts = lowercase, seq_len, list(texts or [])
        self._inputs = self._keras = None

    def __call__(self, path):
        if self.kind is None:
            return {"metadata": False, "reason": self.reason}
        try:
            written = write_metadata(path, self.kind, self.vocab, self.labels, self.lowercase, self.seq_len)
        except MetadataError as e:  # mediapipe is not installed: the file stays as it was
            return {"metadata": False, "reason": str(e)}
        if not self.texts:
            return {"metadata": True, **written}
        litert = self._litert(path)
        keras = self._keras_outputs()
        ascii_only = np.array([text.isascii() for text in self.texts], bool)
        if self.kind == "classifier":
            got = classify(path, self.texts)
            same_litert = got.argmax(-1) == litert.argmax(-1)
            diff = np.abs(got - keras).max(-1)
            check = {"agreement": float(np.mean(got.argmax(-1) == keras.argmax(-1))),
                     "max_abs_diff": float(diff.max()),
                     "max_abs_diff_ascii": float(diff[ascii_only].max()) if ascii_only.any() else None}
        else:
            got = embed(path, self.texts)
            same_litert = _cosine(got, litert) >= 0.999
            cos = _cosine(got, keras)
            check = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
                     "min_cosine_ascii": float(cos[ascii_only].min()) if ascii_only.any() else None}
        return {"metadata": True, **written, "examples": len(self.texts), **check,
                "litert_agreement": float(np.mean(same_litert)), "ascii_texts": int(ascii_only.sum()),
                "litert_agreement_ascii": float(np.mean(same_litert[ascii_only])) if ascii_only.any() else None}

    def _model_inputs(self):
        if self._inputs is None:
            packed = self.tokenizer(self.texts, seq_len=self.seq_len)
            self._inputs = {k: np.asarray(v).astype(np.int32) for k, v in packed.items()}
        return self._inputs

    def _keras_outputs(self):
        """The Keras model's outputs on the texts, as the TFLite file gives them."""
        if self._keras is None:
            from kbert.export.tflite import ids_outputs
            from kbert.tasks.base import model_inputs, predict_arrays

            raw = predict_arrays(self.model, model_inputs(self._model_inputs()), 64)
            raw = raw if isinstance(raw, dict) else {"logits": raw}
            self._keras = _only(ids_outputs(self.model, raw))
        return self._keras

    def _litert(self, path):
        from ai_edge_litert.interpreter import Interpreter

        from kbert.export.tflite import TFLITE_INPUTS

        runner = Interpreter(model_path=os.fspath(path)).get_signature_runner("serving_default")
        inputs = self._model_inputs()
        rows = [_only(runner(**{name: inputs[key][i:i + 1] for name, key in TFLITE_INPUTS.items()}))
                for i in range(len(self.texts))]
        return np.concatenate(rows)


def _only(outputs):
    """The one output of a classifier or embedder, as a float64 array."""
    (value,) = outputs.values()
    return np.asarray(value, np.float64)


def _cosine(a, b):
    return np.sum(a * b, -1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
