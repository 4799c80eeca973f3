"""Import Google BERT and Hugging Face checkpoints; export to Hugging Face.

Why our own code: keras-hub's converters load into keras-hub's own backbone (with
a different variable layout and no NSP/QA heads) and need the network, and HF
dropped TensorFlow. The mapping here is one table from each kbert variable to its
Google and HF names, so import and export are the same table read both ways.

Sources are read without unpickling: Google checkpoints with
`tf.train.load_checkpoint`, HF weights from `model.safetensors` (or
`pytorch_model.bin` through `torch.load(weights_only=True)` when torch is
installed). Every mismatch (missing or unexpected variable, wrong shape, vocab
size different from the embedding matrix) raises one `ConfigError` naming the
variable before anything is written.


Modules: `variables` (the name table), `hf`, `google`.
"""

from kbert.checkpoints.google import load_google
from kbert.checkpoints.hf import HF_ARCHITECTURES, export_hf, load_hf
from kbert.checkpoints.variables import weight_map
from kbert.outputs import writes_output


@writes_output("model_dir", inputs=("source",))
def import_checkpoint(source, out, fmt, seq_len=None, architecture=None, overwrite=False):
    """Import a Google (`fmt="google"`) or HF (`fmt="hf"`) checkpoint as a model dir.

    `out` is checked (and locked) before the checkpoint is read; an existing one
    is replaced only if it is a kbert model directory, or with `overwrite=True`.

    `seq_len` (recorded for fine-tuning and export) defaults to a
    sentence-transformers model's `max_seq_length`, else 128, or the model's
    `max_position_embeddings` when that is shorter; a length given is checked
    by `kbert.config.check_seq_len`, never cut silently.
    """
    from kbert.config import DEFAULT_SEQ_LEN
    from kbert.model_dir import save_model

    if fmt == "google":
        model, info = load_google(source)
    elif fmt == "hf":
        model, info = load_hf(source, architecture=architecture)
    else:
        raise ValueError(f"fmt must be 'google' or 'hf', got {fmt!r}")
    from kbert.tasks.registry import spec

    encoder = spec(info["task"]).encoder(model)
    if seq_len is None:
        # A sentence-transformers model says how long its inputs are (max_seq_length).
        seq_len = info.get("seq_len") or min(DEFAULT_SEQ_LEN, encoder.config.max_position_embeddings)
    # save_model checks it (kbert.config.check_seq_len) before writing anything.
    return save_model(
        model, out, vocab=info["vocab"], lowercase=info["lowercase"], labels=info["labels"],
        seq_len=seq_len,
    )


__all__ = ["HF_ARCHITECTURES", "export_hf", "import_checkpoint", "load_google", "load_hf", "weight_map"]
