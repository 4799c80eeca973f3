"""Serving for encoders (and pre-trained models, whose encoder is exported).

Outputs: the encoder's `sequence_output` `[batch, seq_len, hidden]` and
`pooled_output` `[batch, hidden]` for `text`.
"""

from kbert.tasks.serving import call_model, text_specs


def serving_default(model, tokenizer, seq_len, task=None, labels=None, pair=False):
    def encode(text):
        return call_model(model, tokenizer(text, seq_len=seq_len))

    return encode, text_specs()
