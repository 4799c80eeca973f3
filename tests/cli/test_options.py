"""Every option default of every `kbert` command is the Python API's default
(read from both with `inspect`), so the CLI and the API cannot drift apart
(issue: `kbert pretrain --steps` was 10000 while `pretrain(steps=1000)`)."""

import inspect
import operator

import click
import pytest

from kbert.cli import main
from kbert.cli.options import LazyDefault, api_default

# command -> the API callables its options feed: "module:name", or
# ("module:name", {click parameter name: API parameter name, or (name, transform)}).
# A parameter that no callable takes (or takes without a default) is a CLI-only one.
_FINETUNE = ("kbert.training.finetune:finetune", {"eval_": "eval"})
_DATA_CONFIG = ("kbert.data:PretrainingConfig", {"max_predictions": "max_predictions_per_seq"})
API = {
    "vocab": ["kbert.tokenization.learn:learn_vocab", ("kbert.config:BertConfig", {"size": "vocab_size"})],
    "import": ["kbert.checkpoints:import_checkpoint"],
    "export-hf": ["kbert.checkpoints:export_hf"],
    "pretrain-data": [("kbert.data:write_tfrecords", {"shards": "num_shards"}), _DATA_CONFIG],
    "pretrain": [("kbert.training.pretrain:pretrain", {
        "lr": "learning_rate", "accumulate": "accumulation_steps", "preset": "config",
        "no_nsp": ("next_sentence", operator.not_), "cased": ("lowercase", operator.not_)}), _DATA_CONFIG],
    "finetune classify": [_FINETUNE, "kbert.tasks:ClassifyTask"],
    "finetune ner": [_FINETUNE, "kbert.tasks:NerTask"],
    "finetune qa": [_FINETUNE, "kbert.tasks:QaTask"],
    "finetune embed": [_FINETUNE, "kbert.tasks:EmbedTask"],
    "embed": ["kbert.vectors:embed_file"],
    "search": ["kbert.vectors:VectorIndex.build", "kbert.vectors:VectorIndex.search"],
    "evaluate": ["kbert.training.finetune:evaluate"],
    "apply-adapter": ["kbert.training.lora:apply_adapter"],
    "distill": [("kbert.training.distillation:distill", {"eval_": "eval"})],
    "predict": ["kbert.training.finetune:predict"],
    "export": [("kbert.export:export", {"eval_": "eval"})],
    "serve-request": ["kbert.serving.client:predict_request", "kbert.serving.client:post"],
    "datasets list": [],
    "datasets fetch": ["kbert.datasets:fetch"],
    "datasets prepare": ["kbert.datasets:prepare_sentiment"],
    "quickstart": ["kbert.recipes.quickstart:quickstart"],
    "demo": ["kbert.demo.server:make_server"],
}


def _commands(group, prefix=""):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def _cli_default(command, param):
    """The value the command gets when the option is not given."""
    ctx = click.Context(command)
    value = param.process_value(ctx, param.get_default(ctx))
    # Not given and no default (click 8.5's UNSET), or a repeatable option given no
    # times: the command receives None or (), what the API's None stands for.
    return None if value is getattr(click.core, "UNSET", None) or value == () else value


def _api_defaults(targets, name):
    found = []
    for target in targets:
        target, renames = (target, {}) if isinstance(target, str) else target
        api_name, transform = renames.get(name, name), None
        if isinstance(api_name, tuple):
            api_name, transform = api_name
        try:
            value = api_default(target, api_name)
        except TypeError:  # not a parameter of this callable, or a required one
            continue
        found.append((target, api_name, transform, value))
    return found


def test_every_command_is_mapped_to_its_api():
    assert sorted(name for name, _ in _commands(main)) == sorted(API)


@pytest.mark.parametrize("name", sorted(API))
def test_option_defaults_are_the_api_defaults(name):
    command = dict(_commands(main))[name]
    checked = 0
    for param in command.params:
        if param.required:
            continue
        for target, api_name, transform, api_value in _api_defaults(API[name], param.name):
            value = _cli_default(command, param)
            value = transform(value) if transform else value
            if isinstance(api_value, tuple) and isinstance(value, list):
                value = tuple(value)
            assert value == api_value, f"kbert {name} --{param.name}: {value!r}, but {target} {api_name}={api_value!r}"
            checked += 1
    assert checked or not API[name]


def test_evaluate_passes_only_the_task_options_given():
    # Their defaults belong to the model dir's task, which the command does not know yet.
    from kbert.training.options import option_defaults

    command = dict(_commands(main))["evaluate"]
    task_options = {n for task in ("classify", "ner", "qa", "embed") for n in option_defaults(task)} | {"articles"}
    for param in command.params:
        if param.name in task_options:
            assert _cli_default(command, param) is None, param.name


def test_presets_come_from_the_config():
    from kbert.config import PRESETS

    command = dict(_commands(main))["pretrain"]
    preset = next(p for p in command.params if p.name == "preset")
    assert list(preset.type.choices) == list(PRESETS)


def test_api_default_and_lazy_default():
    def f(a, b=3, *, c="x"):
        return a, b, c

    assert api_default(f, "b") == 3 and api_default(f, "c") == "x"
    with pytest.raises(TypeError, match="no parameter 'a' with a default"):
        api_default(f, "a")
    with pytest.raises(TypeError, match="no parameter 'z'"):
        api_default(f, "z")
    lazy = LazyDefault("kbert.config:BertConfig", "max_position_embeddings")
    assert lazy() == 512 and str(lazy) == "512"
    assert api_default("kbert.training.pretrain:pretrain", "checkpoint_every") == 500
