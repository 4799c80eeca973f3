"""BERT text normalisation in the graph: Hugging Face's cleaning, accent
stripping and lowercasing as TensorFlow string ops (see `kbert.tokenization`
for why we do not use tf-text's own case folding)."""

import tensorflow as tf
import tensorflow_text as tf_text

def clean_text(text):
    """Hugging Face `BertTokenizer` text cleaning, elementwise on a string tensor.

    Invalid UTF-8 is first replaced by U+FFFD, so no input can fail the graph.
    Then tab, newline and carriage return become spaces, and NUL, U+FFFD and every
    other control, format, private-use or surrogate character (Unicode categories
    Cc, Cf, Co, Cs) is dropped, as HF does. Other whitespace is kept: the wordpiece
    op splits on it just as HF does.
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    text = tf.strings.regex_replace(text, r"[\t\n\r]", " ")
    # RE2's \p{C} has no Cn, so unassigned code points are kept, like in HF.
    return tf.strings.regex_replace(text, r"[\x{FFFD}\p{C}]", "")


def normalize_text(text, lowercase=True, strip_accents=None):
    """`clean_text`, then HF's accent stripping and lowercasing (in that order).

    Args:
        text: string tensor of any shape.
        lowercase: bool. Lowercase the text.
        strip_accents: bool. NFD-decompose and drop nonspacing marks (Mn).
            Defaults to `lowercase`, as in BERT uncased.
    """
    if strip_accents is None:
        strip_accents = lowercase
    text = clean_text(text)
    if strip_accents:
        text = tf_text.normalize_utf8(text, "NFD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
    if lowercase:
        # tf.strings.lower turns a word-final capital sigma into "ς"; HF lowercases
        # character by character and always gives "σ".
        text = tf.strings.regex_replace(text, "Σ", "σ")
        text = tf.strings.lower(text, encoding="utf-8")
    return text

