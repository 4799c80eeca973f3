"""BERT models as functional `keras.Model`s: the encoder and one model per task.

Following keras-hub's backbone/task split, every task model wraps a `BertEncoder`
and adds one head. All models take the same input dict (`token_ids`,
`segment_ids`, `padding_mask`; the pre-trainer adds `mask_positions`) and work with
`compile`/`fit`/`evaluate`/`predict` on `tf.data`, and with `.keras` save/load.
"""

import keras

from kbert.config import BertConfig
from kbert.layers import (
    BertEmbeddings,
    BertPooler,
    ClassificationHead,
    MaskedLMHead,
    SpanHead,
    TokenPooling,
    TransformerBlock,
)

INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")


def _serializable(cls):
    return keras.saving.register_keras_serializable(package="kbert")(cls)


@_serializable
class BertEncoder(keras.Model):
    """The BERT encoder: embeddings, `num_layers` Transformer blocks, pooler.

    Args:
        config: a `kbert.BertConfig` (or its dict form).

    Inputs: dict of int32 `[batch, seq_len]` tensors `token_ids`, `segment_ids`,
    `padding_mask` (1 for real tokens, 0 for padding).

    Outputs: dict with `sequence_output` `[batch, seq_len, hidden]` and
    `pooled_output` `[batch, hidden]` (dense + tanh on [CLS]).

    Examples:
    ```python
    encoder = kbert.BertEncoder(kbert.BertConfig.preset("tiny", vocab_size=1000))
    out = encoder({"token_ids": ids, "segment_ids": segs, "padding_mask": mask})
    out["pooled_output"].shape  # (batch, 128)
    ```
    """

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = BertConfig(**config)
        dtype = kwargs.pop("dtype", None)
        embeddings = BertEmbeddings(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            dropout=config.hidden_dropout,
            layer_norm_eps=config.layer_norm_eps,
            initializer_range=config.initializer_range,
            dtype=dtype,
            name="embeddings",
        )
        blocks = [
            TransformerBlock(
                hidden_size=config.hidden_size,
                num_heads=config.num_heads,
                intermediate_size=config.intermediate_size,
                hidden_act=config.hidden_act,
                hidden_dropout=config.hidden_dropout,
                attention_dropout=config.attention_dropout,
                layer_norm_eps=config.layer_norm_eps,
                initializer_range=config.initializer_range,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(config.num_layers)
        ]
        pooler = BertPooler(
            config.hidden_size, initializer_range=config.initializer_range, dtype=dtype, name="pooler"
        )

        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
        x = embeddings(inputs["token_ids"], inputs["segment_ids"])
        for block in blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
        outputs = {"sequence_output": x, "pooled_output": pooler(x)}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        self.config = config
        self.embeddings = embeddings
        self.transformer_layers = blocks
        self.pooler = pooler

    @property
    def token_embedding(self):
        return self.embeddings.token_embedding

    @classmethod
    def from_pretrained(cls, path):
        """The encoder of a pre-trained model.

        Args:
            path: a kbert model directory of any task (its encoder is taken), or a
                Hugging Face BERT directory or hub id (converted in memory by
                `kbert.checkpoints.load_hf`; hub ids need the network).

        Examples:
        ```python
        encoder = kbert.BertEncoder.from_pretrained("runs/minilm")
        encoder = kbert.BertEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
        ```
        """
        from kbert.pretrained import encoder_from_pretrained

        return encoder_from_pretrained(path)

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _Task(keras.Model):
    """A task model: an encoder plus one head. Subclasses set `task`."""

    task = None

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """This task model on the encoder of a pre-trained model.

        If `path` already holds this task's model and its head agrees with every
        argument given (or none is given), that model is returned as is, trained
        head included. If only arguments that keep the head's weights their shape
        differ (e.g. `dropout`), those weights are kept too. Otherwise a new head
        (initialized as in `__init__`) goes on the encoder of `path`, and the
        head-size argument (`num_classes`, `num_labels`) is required.

        Args:
            path: a kbert model directory of any task, or a Hugging Face BERT
                directory or hub id (converted in memory by
                `kbert.checkpoints.load_hf`; hub ids need the network).
            **kwargs: the head's arguments, as for the constructor (e.g.
                `num_classes`, `dropout`).

        Examples:
        ```python
        model = kbert.BertClassifier.from_pretrained("runs/minilm", num_classes=2)
        tagger = kbert.BertTagger.from_pretrained("runs/minilm", num_labels=9)
        qa = kbert.BertQuestionAnswerer.from_pretrained("runs/squad")  # trained head kept
        ```
        """
        from kbert.pretrained import task_from_pretrained

        return task_from_pretrained(cls, path, **kwargs)

    def get_config(self):
        return {
            "encoder": keras.layers.serialize(self.encoder),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)


@_serializable
class BertPretrainer(_Task):
    """BERT pre-training model: masked LM + next-sentence prediction.

    Args:
        encoder: a `BertEncoder`.
        next_sentence: include the NSP head (BERT); `False` gives an MLM-only
            model (RoBERTa-style training, HF `BertForMaskedLM`).

    Inputs: the encoder inputs plus `mask_positions` (int32 `[batch, num_predictions]`,
    positions whose token was masked; pad unused slots with 0 and give them zero
    sample weight in the loss).

    Outputs: dict with `mlm` logits `[batch, num_predictions, vocab_size]` and, with
    `next_sentence`, `nsp` logits `[batch, 2]` (class 0 = B follows A, as in
    Google's BERT).
    """

    task = "pretrain"

    def __init__(self, encoder, next_sentence=True, **kwargs):
        inputs = dict(encoder.input)
        inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        features = encoder({name: inputs[name] for name in INPUT_NAMES})
        cfg = encoder.config
        mlm_head = MaskedLMHead(
            encoder.token_embedding,
            hidden_act=cfg.hidden_act,
            layer_norm_eps=cfg.layer_norm_eps,
            initializer_range=cfg.initializer_range,
            dtype=encoder.dtype_policy,
            name="mlm_head",
        )
        outputs = {"mlm": mlm_head(features["sequence_output"], inputs["mask_positions"])}
        nsp_head = None
        if next_sentence:
            nsp_head = ClassificationHead(
                2, dropout=0.0, initializer_range=cfg.initializer_range,
                dtype=encoder.dtype_policy, name="nsp_head",
            )
            outputs["nsp"] = nsp_head(features["pooled_output"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.encoder = encoder
        self.mlm_head = mlm_head
        self.nsp_head = nsp_head
        self.next_sentence = next_sentence

    def get_config(self):
        return {**super().get_config(), "next_sentence": self.next_sentence}


def _dense_head(encoder, features, num_outputs, dropout, name):
    """Encoder inputs, a `ClassificationHead` and its logits on `features`
    (`pooled_output` for sequence classification, `sequence_output` for tagging)."""
    inputs = dict(encoder.input)
    head = ClassificationHead(
        num_outputs, dropout=dropout, initializer_range=encoder.config.initializer_range,
        dtype=encoder.dtype_policy, name=name,
    )
    return inputs, head, head(encoder(inputs)[features])


@_serializable
class BertClassifier(_Task):
    """Sequence (or sentence-pair) classification, or regression with one output.

    Args:
        encoder: a `BertEncoder`.
        num_classes: number of labels; 1 makes it a regressor.
        dropout: dropout on the pooled output (BERT uses the hidden dropout, 0.1).

    Outputs: float32 logits `[batch, num_classes]`.

    Examples:
    ```python
    model = kbert.BertClassifier(encoder, num_classes=2)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train_ds, validation_data=dev_ds, epochs=3)
    ```
    """

    task = "classify"

    def __init__(self, encoder, num_classes, dropout=0.1, **kwargs):
        inputs, head, outputs = _dense_head(encoder, "pooled_output", num_classes, dropout, "classifier")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.encoder = encoder
        self.head = head
        self.num_classes = num_classes
        self.dropout = dropout

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dropout": self.dropout}


@_serializable
class BertTagger(_Task):
    """Token classification (NER, POS): one label per WordPiece token.

    Args:
        encoder: a `BertEncoder`.
        num_labels: number of tags.
        dropout: dropout on the sequence output.

    Outputs: float32 logits `[batch, seq_len, num_labels]`.
    """

    task = "ner"

    def __init__(self, encoder, num_labels, dropout=0.1, **kwargs):
        inputs, head, outputs = _dense_head(encoder, "sequence_output", num_labels, dropout, "tagger")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.encoder = encoder
        self.head = head
        self.num_labels = num_labels
        self.dropout = dropout

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "dropout": self.dropout}


@_serializable
class BertQuestionAnswerer(_Task):
    """Extractive QA: start and end logits of the answer span over the tokens.

    Args:
        encoder: a `BertEncoder`.

    Outputs: dict with `start_logits` and `end_logits`, float32 `[batch, seq_len]`.
    """

    task = "qa"

    def __init__(self, encoder, **kwargs):
        inputs = dict(encoder.input)
        head = SpanHead(
            initializer_range=encoder.config.initializer_range,
            dtype=encoder.dtype_policy, name="qa_head",
        )
        start, end = head(encoder(inputs)["sequence_output"])
        outputs = {"start_logits": start, "end_logits": end}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.encoder = encoder
        self.head = head


@_serializable
class BertTextEmbedder(_Task):
    """Sentence embeddings: the encoder's token vectors pooled into one vector.

    The model of sentence-transformers' BERT models (all-MiniLM-L6-v2 is
    `pooling="mean", normalize=True`): `kbert import --from hf` of a
    sentence-transformers directory sets the pooling it declares. Pooling adds
    no weights; BERT's dense+tanh pooler is not used (`cls` takes the raw
    `[CLS]` vector, as sentence-transformers does).

    Args:
        encoder: a `BertEncoder`.
        pooling: "mean" (over real tokens), "cls", "max" or "mean_sqrt_len"
            (see `kbert.layers.TokenPooling`).
        normalize: L2-normalize the vectors (then a dot product is the cosine).

    Outputs: dict with `embedding`, float32 `[batch, hidden]`.

    Examples:
    ```python
    embedder = kbert.BertTextEmbedder.from_pretrained("runs/minilm")   # an imported sentence-transformers model
    embedder = kbert.BertTextEmbedder(encoder, pooling="mean", normalize=True)
    vectors = embedder.predict(features)["embedding"]
    ```
    """

    task = "embed"

    def __init__(self, encoder, pooling="mean", normalize=True, **kwargs):
        inputs = dict(encoder.input)
        head = TokenPooling(pooling, normalize=normalize, dtype=encoder.dtype_policy, name="pooling")
        sequence = encoder(inputs)["sequence_output"]
        outputs = {"embedding": head(sequence, inputs["padding_mask"])}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.encoder = encoder
        self.head = head
        self.pooling = pooling
        self.normalize = bool(normalize)

    def get_config(self):
        return {**super().get_config(), "pooling": self.pooling, "normalize": self.normalize}


def task_of(model):
    """The model-dir task name of a kbert model instance (`kbert.tasks.registry`
    maps task names to these classes)."""
    from kbert.tasks.registry import task_of as lookup

    return lookup(model)
