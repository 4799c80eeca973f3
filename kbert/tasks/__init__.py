"""Tasks: what differs between the encoder, pre-training, classification, NER, QA
and sentence embeddings.

`registry` is the one table from a model-dir task name to everything about
it: Keras model class, Hugging Face architectures, head variables, label
count, serving module (`kbert.tasks.serving`) and, for the fine-tuning tasks,
the `Task` class. Each `Task` knows how to read its data files, build its head
on an encoder, make training datasets, compute its metrics and turn model
outputs into answers; its serving module puts the same post-processing into
the exported SavedModel. `kbert.finetune` runs the shared training loop over
them (Model Garden keeps the same split between `tasks/`, serving modules and
the trainer).
"""

from kbert.tasks.base import Task
from kbert.tasks.classify import ClassifyTask
from kbert.tasks.embed import EmbedTask
from kbert.tasks.ner import NerTask
from kbert.tasks.qa import QaTask
from kbert.tasks.registry import TASKS, get_task, model_dir_task

__all__ = ["TASKS", "ClassifyTask", "EmbedTask", "NerTask", "QaTask", "Task", "get_task", "model_dir_task"]
