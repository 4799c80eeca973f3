"""Training: the BERT optimizer and schedule (`optimizer`), the multi-worker
workarounds (`distribution`), fine-tuning/evaluation/prediction on model
directories (`finetune`) and pre-training (`pretrain`).

Public functions are imported lazily (`kbert.training.make_optimizer`); the
function `kbert.finetune` lives in the module `kbert.training.finetune`.
"""

from kbert.lazy import lazy_getattr

_EXPORTS = {
    "AdamW": "kbert.training.optimizer",
    "Lamb": "kbert.training.optimizer",
    "WarmupLinearDecay": "kbert.training.optimizer",
    "make_optimizer": "kbert.training.optimizer",
    "set_precision": "kbert.training.optimizer",
    "warmup_steps": "kbert.training.optimizer",
    "prepare_for_strategy": "kbert.training.distribution",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
