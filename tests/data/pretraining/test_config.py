import pytest

from kbert.data.pretraining import PretrainingConfig
from kbert.errors import KbertError


@pytest.mark.parametrize(
    "field, value",
    [
        ("seq_len", 4),
        ("seq_len", 128.0),
        ("short_seq_prob", 1.5),
        ("masked_lm_prob", 0.0),
        ("max_predictions_per_seq", 0),
        ("max_predictions_per_seq", 126),
        ("whole_word_mask", "yes"),
        ("random_next_prob", -0.1),
        ("dupe_factor", 0),
        ("negatives_buffer", 1),
        ("seed", -1),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(KbertError, match=f"PretrainingConfig.{field}"):
        PretrainingConfig(**{field: value})


def test_config_dict_round_trip_and_unknown_keys():
    config = PretrainingConfig(seq_len=64, whole_word_mask=True)
    assert PretrainingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(KbertError, match="unknown field"):
        PretrainingConfig.from_dict({"seq_length": 64})
