"""Fine-tuning tasks: what differs between classification, NER and QA.

Each task knows how to read its data files, build its head on an encoder, make
training datasets, compute its metrics and turn model outputs into answers.
`kbert.finetune` runs the shared training loop over them (Model Garden keeps the
same split between `tasks/` and the trainer).
"""

from kbert.tasks.base import Task
from kbert.tasks.classify import ClassifyTask
from kbert.tasks.ner import NerTask
from kbert.tasks.qa import QaTask

TASKS = {"classify": ClassifyTask, "ner": NerTask, "qa": QaTask}


def get_task(name, **options):
    """The task object for a model-dir task name, with its options."""
    from kbert.errors import KbertError

    if name not in TASKS:
        raise KbertError(f"task: expected one of {list(TASKS)}, got {name!r}")
    return TASKS[name](**options)


__all__ = ["TASKS", "ClassifyTask", "NerTask", "QaTask", "Task", "get_task"]
