"""`BertConfig`: the architecture hyper-parameters of a BERT encoder.

One config reads and writes three JSON dialects: kbert's own (`to_dict`), Google's
`bert_config.json` and Hugging Face's `config.json`. Values are checked when the
config is built, so a bad file fails with a message naming the field instead of a
shape error deep inside Keras.
"""

import dataclasses
import json
import operator
import os

from kbert.errors import ConfigError

# hidden_act names accepted from Google/HF configs, mapped to kbert activation names.
# Google's and HF's "gelu" both mean the exact (erf) form in HF's conversion of
# Google checkpoints; "gelu_new" / "gelu_pytorch_tanh" are the tanh approximation.
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_exact": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_approximate": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
}

# (num_layers, hidden_size, num_heads) from Turc et al. 2019 ("Well-Read Students")
# and the original BERT paper; intermediate size is always 4 * hidden.
PRESETS = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}

# The shortest sequence a model dir may be trained or exported with: room for
# [CLS], [SEP] and a few pieces of text (a QA window needs question + context).
MIN_SEQ_LEN = 8
# The sequence length recorded when none is asked for (BERT's fine-tuning
# default), or the model's max_position_embeddings when that is shorter.
DEFAULT_SEQ_LEN = 128

# kbert field -> Google/HF key
_EXTERNAL_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "hidden_act": "hidden_act",
    "hidden_dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "initializer_range": "initializer_range",
    "layer_norm_eps": "layer_norm_eps",
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Architecture of a BERT encoder.

    Args:
        vocab_size: number of WordPiece tokens (rows of the token embedding).
        hidden_size: width of every Transformer layer.
        num_layers: number of Transformer layers.
        num_heads: attention heads per layer; must divide `hidden_size`.
        intermediate_size: width of the feed-forward layer.
        hidden_act: feed-forward activation: `gelu` (exact), `gelu_approximate`,
            `relu`, `silu` or `tanh` (Google/HF aliases such as `gelu_new` accepted).
        hidden_dropout: dropout on embeddings and on every residual branch.
        attention_dropout: dropout on attention probabilities.
        max_position_embeddings: longest sequence the model can take.
        type_vocab_size: number of segment ids (2 for sentence pairs).
        initializer_range: stddev of the truncated-normal weight initializer.
        layer_norm_eps: epsilon of every LayerNorm (BERT uses 1e-12).

    Examples:
    ```python
    config = kbert.BertConfig.preset("mini", vocab_size=8000)
    config = kbert.BertConfig.from_json("bert_config.json")  # Google or HF file
    ```
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        act = ACTIVATIONS.get(str(self.hidden_act).lower())
        if act is None:
            raise ConfigError(
                f"hidden_act: unknown activation {self.hidden_act!r}; "
                f"expected one of {sorted(ACTIVATIONS)}"
            )
        object.__setattr__(self, "hidden_act", act)
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name}: expected a rate in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name}: expected a positive number, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size: {self.hidden_size} is not divisible by "
                f"num_heads={self.num_heads}"
            )

    @property
    def head_size(self):
        return self.hidden_size // self.num_heads

    @classmethod
    def preset(cls, name, **overrides):
        """A config of a standard size: tiny, mini, small, medium, base or large."""
        if name not in PRESETS:
            raise ConfigError(f"preset: unknown name {name!r}; expected one of {list(PRESETS)}")
        layers, hidden, heads = PRESETS[name]
        values = dict(
            num_layers=layers,
            hidden_size=hidden,
            num_heads=heads,
            intermediate_size=4 * hidden,
        )
        values.update(overrides)
        return cls(**values)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_external_dict(self, flavor="hf"):
        """The config as Google's `bert_config.json` or HF's `config.json`."""
        out = {_EXTERNAL_KEYS[k]: v for k, v in self.to_dict().items()}
        if flavor == "google":
            out.pop("layer_norm_eps")  # Google's code hard-wires 1e-12
        elif flavor == "hf":
            out.update(model_type="bert", position_embedding_type="absolute", pad_token_id=0)
        else:
            raise ValueError(f"flavor must be 'hf' or 'google', got {flavor!r}")
        return out

    @classmethod
    def from_dict(cls, values, source="config"):
        """Build from kbert, Google or HF key names; unknown keys are ignored.

        `source` names the file in error messages.
        """
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(values).__name__}")
        external = {v: k for k, v in _EXTERNAL_KEYS.items()}
        kwargs = {}
        for key, value in values.items():
            name = key if key in _EXTERNAL_KEYS else external.get(key)
            if name is not None:
                kwargs[name] = value
        pos_type = values.get("position_embedding_type", "absolute")
        if pos_type != "absolute":
            raise ConfigError(
                f"{source}: position_embedding_type={pos_type!r} is not supported "
                "(only 'absolute', as in BERT)"
            )
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path):
        """Read a kbert, Google (`bert_config.json`) or HF (`config.json`) file."""
        from kbert.io import read_json

        values = read_json(path)
        # kbert model dirs nest the architecture under "bert".
        if isinstance(values, dict) and isinstance(values.get("bert"), dict):
            values = values["bert"]
        return cls.from_dict(values, source=os.fspath(path))

    def to_json(self, path, flavor="kbert"):
        """Write as kbert (default), `hf` or `google` JSON."""
        values = self.to_dict() if flavor == "kbert" else self.to_external_dict(flavor)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2)
            f.write("\n")


def check_seq_len(seq_len, config, field="seq_len"):
    """The one range check of a model's sequence length.

    Fine-tuning, evaluation, prediction, pre-training, import, export and
    `save_model` all call this, so every stage accepts the same lengths:
    `MIN_SEQ_LEN` up to the model's `max_position_embeddings`.

    Args:
        seq_len: the length asked for (an integer).
        config: the model's `BertConfig`.
        field: the name the error message gives the value.

    Returns:
        `seq_len` as an `int`.

    Raises:
        ConfigError: one line naming `field`, the value and the allowed range.

    Examples:
    ```python
    check_seq_len(128, kbert.BertConfig.preset("tiny"))   # 128
    check_seq_len(1024, kbert.BertConfig.preset("tiny"))  # ConfigError: seq_len: 1024 is outside 8..512 ...
    ```
    """
    try:
        if isinstance(seq_len, bool):
            raise TypeError
        value = operator.index(seq_len)
    except TypeError:
        raise ConfigError(f"{field}: expected an integer, got {seq_len!r}") from None
    if not MIN_SEQ_LEN <= value <= config.max_position_embeddings:
        raise ConfigError(
            f"{field}: {value} is outside {MIN_SEQ_LEN}..{config.max_position_embeddings} "
            "(the model's max_position_embeddings)"
        )
    return value
