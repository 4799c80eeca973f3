"""Keras 3 layers of the BERT encoder and its task heads."""

from kbert.layers.embeddings import BertEmbeddings
from kbert.layers.heads import ClassificationHead, MaskedLMHead, SpanHead
from kbert.layers.pooling import POOLING_MODES, TokenPooling
from kbert.layers.transformer import BertPooler, TransformerBlock

__all__ = [
    "BertEmbeddings",
    "BertPooler",
    "ClassificationHead",
    "MaskedLMHead",
    "POOLING_MODES",
    "SpanHead",
    "TokenPooling",
    "TransformerBlock",
]
