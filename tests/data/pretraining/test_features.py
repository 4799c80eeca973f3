import keras
import numpy as np

from kbert.config import BertConfig
from kbert.data.pretraining import dynamic_dataset, tfrecord_dataset
from kbert.models import BertEncoder, BertPretrainer

from .helpers import SMALL


def test_both_datasets_give_keras_the_same_elements(tok, sample, written):
    stored = tfrecord_dataset(written[0], 8, seed=0)
    dynamic = dynamic_dataset(sample, tok, SMALL, 8)
    assert stored.element_spec == dynamic.element_spec
    x, y, w = stored.element_spec
    assert sorted(x) == ["mask_positions", "padding_mask", "segment_ids", "token_ids"]
    assert sorted(y) == sorted(w) == ["mlm", "nsp"]


def test_pretrainer_fits_on_both_datasets(tok, sample, written):
    keras.utils.set_random_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=16, num_layers=2, num_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )
    model = BertPretrainer(BertEncoder(config))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # XLA would compile for longer than the test runs.
    model.compile(keras.optimizers.Adam(1e-3), loss={"mlm": loss, "nsp": loss}, jit_compile=False)
    # Both datasets have the same element spec, so the second fit reuses the
    # traced train step (tracing is most of this test's time).
    for ds in (tfrecord_dataset(written[0], 8, seed=0), dynamic_dataset(sample, tok, SMALL, 8)):
        history = model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
        assert np.isfinite(history.history["loss"]).all()
        assert np.isfinite(history.history["mlm_loss"]).all()
        assert np.isfinite(history.history["nsp_loss"]).all()
