"""The one table of kbert's tasks: what every stage needs to know about each.

A model directory's `task` names a row here. The row says which Keras model
class does the task (`kbert.models`), how to build it on an encoder, how many
labels its head has, which variables its head adds to the checkpoint name map
(`kbert.checkpoints.weight_map`), which Hugging Face architectures it imports
from and exports to, which `kbert.tasks.Task` fine-tunes, evaluates and
predicts with it (none for `encoder` and `pretrain`, which `kbert pretrain`
and the importers make) and which serving module gives its SavedModel
`serving_default` (`kbert.tasks.serving.<module>`). Model dirs, checkpoints,
export and the CLI ask this table, never a task name of their own.

The table imports neither Keras nor TensorFlow: model classes and serving
modules are looked up when first used.

Examples:
```python
from kbert.tasks import registry

registry.spec("qa").model_class()                  # kbert.BertQuestionAnswerer
registry.HF_ARCHITECTURES["BertForMaskedLM"].task  # "pretrain"
registry.spec_of(model).label_count(model)         # e.g. 9 for a CoNLL tagger
```
"""

import dataclasses
import importlib
import os

from kbert.errors import DataError, KbertError
from kbert.tasks.classify import ClassifyTask
from kbert.tasks.embed import EmbedTask
from kbert.tasks.ner import NerTask
from kbert.tasks.qa import QaTask


@dataclasses.dataclass(frozen=True)
class HfArchitecture:
    """A Hugging Face `transformers` BERT class that kbert reads and writes.

    Attributes:
        name: the class name, as in `config.json`'s `architectures`.
        task: the kbert task it holds.
        prefix: the prefix of the encoder's weight names ("bert." for models
            with a head).
        with_pooler: whether its weights include the pooler.
        options: keyword arguments of the kbert model this architecture
            implies, as `(name, value)` pairs (e.g. BERT pre-training's NSP head).
        label_weight: for heads sized by their labels, the weight whose first
            dimension is the label count.
    """

    name: str
    task: str
    prefix: str = "bert."
    with_pooler: bool = False
    options: tuple = ()
    label_weight: str | None = None

    def build(self, config, num_labels=None):
        """A kbert model of this architecture (fresh weights) for `config`."""
        from kbert.models import BertEncoder

        return spec(self.task).build(BertEncoder(config), num_labels=num_labels, **dict(self.options))


class TaskSpec:
    """One row of the table; subclasses fill in what differs.

    Attributes:
        name: the model-dir task name.
        model: class name of the Keras model in `kbert.models`.
        task: the `kbert.tasks.Task` class, or None for models that are not
            fine-tuned (`encoder`, `pretrain`).
        hf_architectures: the `HfArchitecture`s it imports from; export
            writes `hf_architecture(model)`.
        serving: the module in `kbert.tasks.serving` with its
            `serving_default`.
        exports: the task an export of it serves (pre-training models export
            their encoder).
        vectors: its output is a vector per text (embeddings): exports are
            checked by cosine to the Keras vectors, not by label agreement.
    """

    name = None
    model = None
    task = None
    hf_architectures = ()
    serving = None
    exports = None
    vectors = False

    def model_class(self):
        import kbert.models

        return getattr(kbert.models, self.model)

    def serving_module(self):
        return importlib.import_module(f"kbert.tasks.serving.{self.serving}")

    def encoder(self, model):
        """The `BertEncoder` of a model of this task."""
        return model.encoder

    def export_model(self, model):
        """The model an export of a model of this task is made from."""
        return model

    def build(self, encoder, num_labels=None, dropout=None, **options):
        """A new model of this task on `encoder` (head freshly initialized).

        `dropout` defaults to the encoder config's hidden dropout, as BERT's
        heads; `num_labels` sizes heads that predict labels.
        """
        raise NotImplementedError

    def label_count(self, model):
        """Number of labels the model's head predicts, or None."""

    def label_counts(self, model):
        """Numbers of label names a model dir of `model` may hold, or None for any."""
        count = self.label_count(model)
        return None if count is None else (count,)

    def head_weights(self, model):
        """Checkpoint name-map entries of the head's variables (see
        `kbert.checkpoints.variables`); the encoder's come separately."""
        return []

    def hf_architecture(self, model):
        """The `HfArchitecture` an HF export of `model` is written as."""
        return self.hf_architectures[0]

    def hf_config(self, model):
        """Extra `config.json` fields of an HF export of `model`."""
        return {}

    def hf_files(self, model, seq_len=None):
        """Extra JSON files of an HF export of `model`: `{relative path: value}`."""
        return {}


class _Encoder(TaskSpec):
    name, model, serving, exports = "encoder", "BertEncoder", "encoder", "encoder"
    hf_architectures = (HfArchitecture("BertModel", "encoder", prefix="", with_pooler=True),)

    def encoder(self, model):
        return model

    def build(self, encoder, num_labels=None, dropout=None, **options):
        return encoder


class _Pretrain(TaskSpec):
    name, model, serving, exports = "pretrain", "BertPretrainer", "encoder", "encoder"
    hf_architectures = (
        HfArchitecture("BertForPreTraining", "pretrain", with_pooler=True, options=(("next_sentence", True),)),
        HfArchitecture("BertForMaskedLM", "pretrain", options=(("next_sentence", False),)),
    )

    def export_model(self, model):
        return model.encoder

    def build(self, encoder, num_labels=None, dropout=None, next_sentence=True, **options):
        return self.model_class()(encoder, next_sentence=next_sentence)

    def head_weights(self, model):
        from kbert.checkpoints.variables import Entry, dense_entries, norm_entries

        head = model.mlm_head
        entries = [
            *dense_entries(head.dense, "cls.predictions.transform.dense", "cls/predictions/transform/dense"),
            *norm_entries(head.layer_norm, "cls.predictions.transform.LayerNorm",
                          "cls/predictions/transform/LayerNorm"),
            Entry(head.output_bias, "cls.predictions.bias", "cls/predictions/output_bias"),
        ]
        if model.nsp_head is not None:
            nsp = model.nsp_head.dense
            entries += [
                Entry(nsp.kernel, "cls.seq_relationship.weight", "cls/seq_relationship/output_weights",
                      hf_transpose=True, google_transpose=True),
                Entry(nsp.bias, "cls.seq_relationship.bias", "cls/seq_relationship/output_bias"),
            ]
        return entries

    def hf_architecture(self, model):
        return self.hf_architectures[0 if model.next_sentence else 1]


class _Classify(TaskSpec):
    name, model, task, serving, exports = "classify", "BertClassifier", ClassifyTask, "classify", "classify"
    hf_architectures = (HfArchitecture("BertForSequenceClassification", "classify", with_pooler=True,
                                       label_weight="classifier.weight"),)

    def build(self, encoder, num_labels=None, dropout=None, **options):
        dropout = encoder.config.hidden_dropout if dropout is None else dropout
        return self.model_class()(encoder, num_labels, dropout=dropout)

    def label_count(self, model):
        return model.num_classes

    def label_counts(self, model):
        # A regressor (one output) may go without a label name.
        return (0, 1) if model.num_classes == 1 else (model.num_classes,)

    def head_weights(self, model):
        from kbert.checkpoints.variables import dense_entries

        return dense_entries(model.head.dense, "classifier", None)

    def hf_config(self, model):
        return {"problem_type": "regression", "num_labels": 1} if model.num_classes == 1 else {}


class _Ner(_Classify):
    name, model, task, serving, exports = "ner", "BertTagger", NerTask, "ner", "ner"
    hf_architectures = (HfArchitecture("BertForTokenClassification", "ner", label_weight="classifier.weight"),)

    def label_count(self, model):
        return model.num_labels

    def label_counts(self, model):
        return (model.num_labels,)

    def hf_config(self, model):
        return {}


class _Qa(TaskSpec):
    name, model, task, serving, exports = "qa", "BertQuestionAnswerer", QaTask, "qa", "qa"
    hf_architectures = (HfArchitecture("BertForQuestionAnswering", "qa"),)

    def build(self, encoder, num_labels=None, dropout=None, **options):
        return self.model_class()(encoder)

    def head_weights(self, model):
        from kbert.checkpoints.variables import dense_entries

        return dense_entries(model.head.dense, "qa_outputs", None)


class _Embed(TaskSpec):
    name, model, task, serving, exports = "embed", "BertTextEmbedder", EmbedTask, "embed", "embed"
    vectors = True
    # A sentence-transformers directory: a BertModel (config.json says so)
    # plus modules.json and 1_Pooling/config.json, which `kbert.checkpoints.hf`
    # reads and writes; the name is kbert's, for `--architecture`.
    hf_architectures = (HfArchitecture("SentenceTransformer", "embed", prefix="", with_pooler=True),)

    def build(self, encoder, num_labels=None, dropout=None, pooling="mean", normalize=True, **options):
        return self.model_class()(encoder, pooling=pooling, normalize=normalize)

    def hf_config(self, model):
        return {"architectures": ["BertModel"]}

    def hf_files(self, model, seq_len=None):
        from kbert.checkpoints.hf import sentence_transformers_files

        return sentence_transformers_files(model, seq_len)


REGISTRY = {s.name: s for s in (_Encoder(), _Pretrain(), _Classify(), _Ner(), _Qa(), _Embed())}
NAMES = tuple(REGISTRY)
# The fine-tuning tasks: name -> `kbert.tasks.Task` class.
TASKS = {name: s.task for name, s in REGISTRY.items() if s.task is not None}
HF_ARCHITECTURES = {a.name: a for s in REGISTRY.values() for a in s.hf_architectures}


def spec(name):
    """The `TaskSpec` of a task name; `KbertError` for an unknown one."""
    if name not in REGISTRY:
        raise KbertError(f"task: expected one of {list(NAMES)}, got {name!r}")
    return REGISTRY[name]


def spec_of(model):
    """The `TaskSpec` of a kbert model instance; `TypeError` for anything else."""
    for row in REGISTRY.values():
        if type(model) is row.model_class():
            return row
    raise TypeError(f"not a kbert model: {type(model).__name__}")


def task_of(model):
    """The model-dir task name of a kbert model instance."""
    return spec_of(model).name


def build(name, config, num_labels=None, **options):
    """A fresh model of task `name` for a `BertConfig` (see `TaskSpec.build`)."""
    from kbert.models import BertEncoder

    return spec(name).build(BertEncoder(config), num_labels=num_labels, **options)


def get_task(name, **options):
    """The `Task` object of a fine-tuning task name, with its options."""
    if name not in TASKS:
        raise KbertError(f"task: expected one of {list(TASKS)}, got {name!r}")
    return TASKS[name](**options)


def model_dir_task(info, **options):
    """The `Task` of a fine-tuned model directory, set up as it was trained.

    The options saved in its config.json (`task_options`: QA windows and
    answer rules, the NER scheme...) come first and `options` override them;
    the task is configured for the directory's labels.

    Args:
        info: a `kbert.model_dir.ModelDir`.
        **options: task options given now (e.g. the columns of a data file).

    Raises:
        KbertError: the directory's task is not a fine-tuning task.
        DataError: config.json saves an option the task does not have.
    """
    if info.task not in TASKS:
        raise KbertError(
            f"{info.path}: a {info.task} model directory; evaluate and predict need a fine-tuned "
            f"{'/'.join(TASKS)} model (kbert finetune)"
        )
    task_class = TASKS[info.task]
    unknown = sorted(set(info.task_options) - set(task_class.saved_options))
    if unknown:
        raise DataError(f"{os.path.join(info.path, 'config.json')}: field 'task_options' has "
                        f"{unknown[0]!r}, not an option of the {info.task} task")
    task = task_class(**{**info.task_options, **options})
    task.configure(info.labels or None)
    return task
