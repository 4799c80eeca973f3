"""kbert: BERT in TensorFlow/Keras 3, from raw text to TF Serving and a phone.

Names are imported lazily so that `kbert --help` and `import kbert` stay fast; the
first use of a model name imports TensorFlow. No public name equals a submodule's
name (the functions `kbert.finetune`, `kbert.pretrain`, `kbert.quickstart` live in
`kbert.training.finetune`, `kbert.training.pretrain`, `kbert.recipes.quickstart`),
so importing a submodule never replaces a function here.
"""

from kbert.lazy import lazy_getattr

from kbert.version import __version__

_EXPORTS = {
    "BertConfig": "kbert.config",
    "BertEncoder": "kbert.models",
    "BertPretrainer": "kbert.models",
    "BertClassifier": "kbert.models",
    "BertTagger": "kbert.models",
    "BertQuestionAnswerer": "kbert.models",
    "BertTextEmbedder": "kbert.models",
    "BertTokenizer": "kbert.tokenization",
    "BertPreprocessor": "kbert.preprocessing",
    "load_vocab": "kbert.tokenization",
    "learn_vocab": "kbert.tokenization",
    "load_model": "kbert.model_dir",
    "save_model": "kbert.model_dir",
    "read_model_dir": "kbert.model_dir",
    "KbertError": "kbert.errors",
    "finetune": "kbert.training.finetune",
    "evaluate": "kbert.training.finetune",
    "predict": "kbert.training.finetune",
    "pretrain": "kbert.training.pretrain",
    "distill": "kbert.training.distillation",
    "quickstart": "kbert.recipes.quickstart",
    "embed": "kbert.vectors",
    "VectorIndex": "kbert.vectors",
    "load_adapter": "kbert.training.lora",
    "apply_adapter": "kbert.training.lora",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_getattr(__name__, _EXPORTS, light={"KbertError", "BertConfig", "read_model_dir", "load_vocab"})


def __dir__():
    return sorted(__all__)
