"""The student of `kbert.distill`: from a preset, a model directory with the
teacher's vocabulary, or the teacher's own layers (DistilBERT's
initialization), and the teacher layer each student layer learns from.

Importing this module needs no Keras.
"""

import math
import os

from kbert.config import PRESETS, BertConfig, check_seq_len
from kbert.errors import ConfigError


def layer_map(teacher_layers, student_layers):
    """The teacher layer (0-based) each student layer learns from: the top
    layer of each of `student_layers` equal groups (TinyBERT's uniform map;
    6 -> 3 layers: 1, 3, 5)."""
    return [math.ceil((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


def make_student(teacher_model, info, student, student_layers, task, labels, dropout, seq_len):
    """The student task model, how it was made, and the teacher layers it took (or None).

    Args:
        teacher_model: the teacher's Keras model.
        info: the teacher's `ModelDir`.
        student, student_layers: as `distill`'s.
        task: the `kbert.tasks.Task` (configured).
        labels: the teacher's labels (None for a regressor).
        dropout: dropout of a new head.
        seq_len: the training length (the student must take it).

    Raises:
        ConfigError: one line: no student, an unknown preset, a model
            directory with another vocabulary or casing, layers that do not fit.
    """
    from kbert.models import BertEncoder

    t_config = info.config
    is_dir = isinstance(student, (str, os.PathLike)) and os.path.isfile(os.path.join(student, "config.json"))
    if student is None and student_layers is None:
        raise ConfigError("student: give a preset (" + ", ".join(PRESETS) + "), a model directory, "
                          "or student_layers (teacher layers to start from)")
    if is_dir:
        if student_layers is not None:
            raise ConfigError(f"student_layers: takes teacher layers into a new student; {student} already "
                              "has its own weights (give a preset or no student)")
        return _student_from_dir(student, info, task, labels, dropout, seq_len) + (None,)
    if isinstance(student, BertConfig):
        config = student
        described = "config"
    elif student is not None:
        name = os.fspath(student)
        if name not in PRESETS:
            if os.path.exists(name):
                raise ConfigError(f"student: {name} is not a kbert model directory (no config.json)")
            raise ConfigError(f"student: {name!r} is neither a preset ({', '.join(PRESETS)}) nor a model directory")
        config = BertConfig.preset(name, vocab_size=t_config.vocab_size, hidden_act=t_config.hidden_act,
                                   max_position_embeddings=t_config.max_position_embeddings,
                                   type_vocab_size=t_config.type_vocab_size, layer_norm_eps=t_config.layer_norm_eps)
        described = f"preset {name}"
    else:
        config = None
    taken = None
    if student_layers is not None:
        if config is not None:
            _check_same_width(config, t_config)
        taken = teacher_layers(student_layers, t_config.num_layers, config.num_layers if config else None)
        if config is None:
            config = BertConfig(**{**t_config.to_dict(), "num_layers": len(taken)})
            described = f"teacher layers {taken}"
        else:
            described += f", teacher layers {taken}"
    if config.vocab_size != t_config.vocab_size:
        raise ConfigError(f"student: vocab_size {config.vocab_size} differs from the teacher's "
                          f"{t_config.vocab_size}: a student must share the teacher's vocabulary")
    check_seq_len(seq_len, config)
    model = task.build(BertEncoder(config), labels, dropout)
    if taken is not None:
        copy_teacher_layers(teacher_model, model, taken)
    return model, described, taken


def _student_from_dir(path, info, task, labels, dropout, seq_len):
    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks.registry import spec

    s_info = read_model_dir(path)
    if s_info.vocab != info.vocab:
        first = next((i for i, (a, b) in enumerate(zip(s_info.vocab, info.vocab)) if a != b),
                     min(len(s_info.vocab), len(info.vocab)))
        raise ConfigError(f"{s_info.vocab_path}: differs from the teacher's vocab.txt ({len(s_info.vocab)} vs "
                          f"{len(info.vocab)} tokens, first difference at line {first + 1}): a student must "
                          "share the teacher's vocabulary")
    if s_info.lowercase != info.lowercase:
        raise ConfigError(f"{path}: lowercase is {s_info.lowercase} but the teacher's is {info.lowercase}: a "
                          "student must tokenize as the teacher does")
    check_seq_len(seq_len, s_info.config)
    if s_info.config.type_vocab_size < info.config.type_vocab_size:
        raise ConfigError(f"{path}: type_vocab_size {s_info.config.type_vocab_size} is less than the teacher's "
                          f"{info.config.type_vocab_size}")
    base = load_model(path)
    if s_info.task == task.name and (s_info.labels or None) == labels and task.matches(base, labels):
        return base, f"model directory {os.fspath(path)} (its head)"
    return task.build(spec(s_info.task).encoder(base), labels, dropout), f"model directory {os.fspath(path)}"


def teacher_layers(student_layers, teacher_count, count=None):
    """The 0-based teacher layers a student takes (see `distill`).

    Args:
        student_layers: a count k (the top layer of each of k equal groups)
            or a list of layer indices (increasing).
        teacher_count: the teacher's number of layers.
        count: the student's number of layers, when fixed (a preset).

    Examples:
    ```python
    teacher_layers(3, 6)      # [1, 3, 5]
    teacher_layers(6, 12)     # [1, 3, 5, 7, 9, 11]
    teacher_layers("0,2,4", 6)  # [0, 2, 4]
    ```
    """
    value = student_layers
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            value = int(parts[0]) if len(parts) == 1 else [int(p) for p in parts]
        except (ValueError, IndexError):
            raise ConfigError(f"student_layers: expected a count or comma-separated layer numbers, "
                              f"got {student_layers!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise ConfigError(f"student_layers: expected a count or a list of layers, got {student_layers!r}")
    if isinstance(value, int):
        if not 1 <= value <= teacher_count:
            raise ConfigError(f"student_layers: {value} is outside 1..{teacher_count} (the teacher's layers)")
        layers = layer_map(teacher_count, value)
    else:
        layers = [int(v) for v in value]
        if not layers or any(not 0 <= v < teacher_count for v in layers) or layers != sorted(set(layers)):
            raise ConfigError(f"student_layers: {layers} must be increasing teacher layers in 0..{teacher_count - 1}")
    if count is not None and len(layers) != count:
        raise ConfigError(f"student_layers: {len(layers)} layers for a student of {count} layers")
    return layers


def _check_same_width(config, t_config):
    for field in ("hidden_size", "num_heads", "intermediate_size"):
        if getattr(config, field) != getattr(t_config, field):
            raise ConfigError(f"student_layers: copying teacher layers needs the student's {field} to be the "
                              f"teacher's ({getattr(config, field)} vs {getattr(t_config, field)})")


def copy_teacher_layers(teacher_model, student_model, layers):
    """Copy the teacher's embeddings, layers `layers` (in order), pooler and
    head into a student of the same width (DistilBERT's initialization)."""
    t_enc, s_enc = teacher_model.encoder, student_model.encoder
    s_enc.embeddings.set_weights(t_enc.embeddings.get_weights())
    for block, index in zip(s_enc.transformer_layers, layers):
        block.set_weights(t_enc.transformer_layers[index].get_weights())
    s_enc.pooler.set_weights(t_enc.pooler.get_weights())
    student_model.head.set_weights(teacher_model.head.get_weights())


def layer_mapping(given, taken, t_config, s_config, attention_weight):
    """The teacher layer of each student layer for the intermediate losses
    (`distill`'s `layer_map`, checked), and the attention loss's head check."""
    if given is None:
        mapping = taken if taken is not None else layer_map(t_config.num_layers, s_config.num_layers)
    else:
        if isinstance(given, str):
            try:
                given = [int(p) for p in given.split(",") if p.strip()]
            except ValueError:
                raise ConfigError(f"layer_map: expected comma-separated layer numbers, got {given!r}") from None
        mapping = [int(v) for v in given]
        if any(not 0 <= v < t_config.num_layers for v in mapping):
            raise ConfigError(f"layer_map: {mapping} must be teacher layers in 0..{t_config.num_layers - 1}")
        if len(mapping) != s_config.num_layers:
            raise ConfigError(f"layer_map: {len(mapping)} teacher layers for a student of {s_config.num_layers}")
    if attention_weight and s_config.num_heads != t_config.num_heads:
        raise ConfigError(f"attention_weight: the attention loss needs the student's head count to be the "
                          f"teacher's ({s_config.num_heads} vs {t_config.num_heads})")
    return list(mapping)
