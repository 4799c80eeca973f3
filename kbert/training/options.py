"""What callers hand a task: its options, checked by name, and the texts to
predict on, from arguments and files.

Shared by `kbert.finetune`/`evaluate`/`predict` and the CLI, so a wrong option
is one `ConfigError` naming it (not a `TypeError` from a constructor) whichever
way it came in.
"""

import inspect
import os

from kbert.errors import ConfigError, DataError, KbertError



def task_class(name):
    """The task class registered under `name` (`kbert.tasks.TASKS`)."""
    from kbert.tasks import TASKS

    if name not in TASKS:
        raise KbertError(f"task: expected one of {list(TASKS)}, got {name!r}")
    return TASKS[name]


def option_defaults(task):
    """`{option: default}` of a task: the keyword parameters of its class.

    Examples:
    ```python
    option_defaults("qa")["doc_stride"]   # 128
    ```
    """
    parameters = inspect.signature(task_class(task).__init__).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p.default for name, p in parameters.items() if name != "self" and p.kind in kinds}


def task_options(task, options, split="train"):
    """The options to build task `task` with, checked against what it takes.

    Args:
        task: a task name (`classify`, `ner`, `qa`).
        options: `{name: value}`; `None` values mean "the task's default"
            and are dropped.
        split: `train` (fine-tuning) or `eval` (evaluate/predict). On the eval
            split `articles`, the slice of the file at hand, is the task's
            `eval_articles`.

    Returns:
        The options dict, ready for `kbert.tasks.get_task(task, **options)`.

    Raises:
        ConfigError: an option the task does not take, named.
    """
    accepted = option_defaults(task)
    given = {k: v for k, v in options.items() if v is not None}
    if split == "eval":
        for name, option in task_class(task).evaluate_aliases.items():
            if name in given:
                given[option] = given.pop(name)
    for name in sorted(given):
        if name not in accepted:
            raise ConfigError(f"{name}: does not apply to a {task} model "
                              f"(its options: {', '.join(accepted) or 'none'})")
    return given


def read_inputs(path, task, text_column=None, pair_column=None):
    """Texts (and second texts) to predict on, from a file.

    Args:
        path: `.txt`: one text a line (blank lines skipped); `.tsv`, `.csv`,
            `.jsonl`: columns, as `kbert.data.read_text_data` reads them.
        task: the model's task; QA files default to `question`/`context` columns.
        text_column, pair_column: column names (or indexes).

    Returns:
        `(texts, pairs or None)`.
    """
    from kbert.data.classification import read_text_data
    from kbert.io import iter_text_lines

    if os.path.splitext(os.fspath(path))[1].lower() == ".txt" and not text_column:
        return [line for _, line in iter_text_lines(path) if line.strip()], None
    from kbert.tasks import TASKS

    default_text, default_pair = TASKS[task].input_columns if task in TASKS else (None, None)
    data = read_text_data(path, text_column=text_column or default_text, pair_column=pair_column or default_pair,
                          require_labels=False)
    return list(data.texts), (list(data.pairs) if data.pairs is not None else None)


def prediction_inputs(model_dir, texts=(), pairs=(), path=None, text_column=None, pair_column=None):
    """All the inputs of one prediction run: `texts`/`pairs` given, then the
    rows of the file `path` (see `read_inputs`).

    Args:
        model_dir: the model directory (its task picks the file's columns).
        texts: texts (QA: questions).
        pairs: second texts, one per text (QA: contexts), or empty.
        path: optional input file.
        text_column, pair_column: the file's columns.

    Returns:
        `(texts, pairs or None)`, checked to be non-empty and of equal length.
    """
    from kbert.model_dir import read_model_dir

    texts, pairs = list(texts), list(pairs)
    if path:
        more, more_pairs = read_inputs(path, read_model_dir(model_dir).task, text_column, pair_column)
        if pairs and more_pairs is None:
            raise DataError(f"{path}: no second-text column, but the other texts have pairs: "
                            "give pairs for all inputs or for none")
        if more_pairs and texts and not pairs:
            raise DataError(f"{path}: has a second-text column, but the other texts have no pairs: "
                            "give pairs for all inputs or for none")
        texts += more
        pairs += more_pairs or []
    if not texts:
        raise KbertError("nothing to predict: give texts or an input file")
    if pairs and len(pairs) != len(texts):
        raise KbertError(f"got {len(texts)} texts but {len(pairs)} pairs (contexts): give one per text")
    return texts, pairs or None
