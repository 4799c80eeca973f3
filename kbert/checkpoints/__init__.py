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

def import_checkpoint(source, out, fmt, seq_len=128, architecture=None):
    """Import a Google (`fmt="google"`) or HF (`fmt="hf"`) checkpoint as a model dir."""
    from kbert.model_dir import save_model

    if fmt == "google":
        model, info = load_google(source)
    elif fmt == "hf":
        model, info = load_hf(source, architecture=architecture)
    else:
        raise ValueError(f"fmt must be 'google' or 'hf', got {fmt!r}")
    encoder = model if info["task"] == "encoder" else model.encoder
    seq_len = min(seq_len, encoder.config.max_position_embeddings)
    return save_model(
        model, out, vocab=info["vocab"], lowercase=info["lowercase"], labels=info["labels"],
        seq_len=seq_len,
    )


__all__ = ["HF_ARCHITECTURES", "export_hf", "import_checkpoint", "load_google", "load_hf", "weight_map"]
