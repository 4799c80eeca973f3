"""Training: the BERT optimizer and schedule (`optimizer`), the multi-worker
workarounds (`distribution`), fine-tuning/evaluation/prediction on model
directories (`finetune`) and pre-training (`pretrain`).

Public functions are imported lazily (`kbert.training.make_optimizer`); the
function `kbert.finetune` lives in the module `kbert.training.finetune`.
"""

import importlib

_EXPORTS = {
    "WarmupLinearDecay": "kbert.training.optimizer",
    "make_optimizer": "kbert.training.optimizer",
    "set_precision": "kbert.training.optimizer",
    "warmup_steps": "kbert.training.optimizer",
    "prepare_for_strategy": "kbert.training.distribution",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kbert.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
