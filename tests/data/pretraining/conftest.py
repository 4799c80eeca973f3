"""Fixtures shared by the pre-training data tests: the real sample corpus, its
instances and tokenized documents, and one TFRecord directory written from it."""

import numpy as np
import pytest

from conftest import data_path
from kbert.data.pretraining import PretrainingConfig, create_instances, read_documents, special_token_ids
from kbert.data.pretraining.instances import tokenize_documents

from .helpers import SMALL


@pytest.fixture(scope="session")
def special(tok):
    """The reserved ids of the MiniLM vocabulary."""
    return special_token_ids(tok)


@pytest.fixture(scope="session")
def sample():
    return data_path("corpus", "sample.txt")


@pytest.fixture(scope="session")
def sample_instances(tok, sample):
    """Instances of sample.txt (~2,500, ~270k tokens) with the default config."""
    rng = np.random.default_rng(0)
    return list(create_instances(read_documents(sample), tok, PretrainingConfig(), rng))


@pytest.fixture(scope="session")
def sample_docs(tok, sample):
    """Each document of sample.txt as one flat array of token ids."""
    return [d.ids for d in tokenize_documents(read_documents(sample), tok)]


@pytest.fixture(scope="session")
def written(tok, sample, tmp_path_factory):
    """sample.txt written with `SMALL` into 3 shards: (directory, info)."""
    from kbert.data.pretraining import write_tfrecords

    out = tmp_path_factory.mktemp("tfrecords") / "data"
    info = write_tfrecords(sample, tok, out, SMALL, num_shards=3, progress=False)
    return out, info
