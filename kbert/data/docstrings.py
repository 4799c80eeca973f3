"""A real-English pre-training corpus that every machine already has: the
docstrings of the installed Python standard library (and of installed
packages such as TensorFlow).

Used by `kbert quickstart --from-scratch` when no `--corpus` is given, so that
pre-training from scratch needs no download. Each docstring paragraph is a
document (BERT's format: one sentence a line, a blank line between
documents); doctest lines, parameter tables and code-like lines are dropped,
so what is left is prose written by people.
"""

import ast
import os
import re
import sysconfig

from kbert.data.pretraining import split_sentences

_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "__pycache__", "turtledemo"}
_CODE = re.compile(r"^\s*(>>>|\.\.\.|[-=~*]{3,}|[\w.]+\s*[:=(]|[{}\[\]()]|#|@)")


def python_sources(packages=("tensorflow",)):
    """Sorted .py files of the standard library and the named installed packages."""
    roots = [sysconfig.get_paths()["stdlib"]]
    for name in packages:
        spec = _find_spec(name)
        if spec is not None:
            roots.append(spec)
    files = []
    for root in roots:
        for directory, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
            files += [os.path.join(directory, n) for n in sorted(names) if n.endswith(".py")]
    return files


def _find_spec(name):
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def docstring_documents(path):
    """Prose paragraphs of the docstrings in one .py file, each a list of sentences."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return []
    documents = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node)
        if not doc:
            continue
        for paragraph in re.split(r"\n\s*\n", doc):
            lines = paragraph.splitlines()
            if not lines or any(_CODE.match(line) for line in lines):
                continue
            text = " ".join(line.strip() for line in lines)
            words = text.split()
            # Prose: several words, mostly alphabetic, ends like a sentence.
            if len(words) < 6 or not text.endswith((".", "!", "?")):
                continue
            if sum(w.isalpha() for w in words) < 0.6 * len(words):
                continue
            documents.append(split_sentences(text))
    return documents


def write_docstring_corpus(out, max_bytes=20_000_000, packages=("tensorflow",), progress=False):
    """Write the docstring corpus to `out` in BERT's pre-training format.

    Args:
        out: text file to write.
        max_bytes: stop once the file is this large.
        packages: installed packages whose docstrings are used after the
            standard library's.
        progress: show a tqdm bar over the source files.

    Returns:
        `(documents, sentences, bytes)` written.

    Examples:

    >>> write_docstring_corpus("runs/docstrings.txt", max_bytes=2_000_000)  # doctest: +SKIP
    """
    from kbert.io import atomic_file

    files = python_sources(packages)
    if progress:
        from tqdm import tqdm

        files = tqdm(files, desc="docstrings", unit="file")
    documents = sentences = size = 0
    seen = set()
    with atomic_file(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for path in files:
            for document in docstring_documents(path):
                key = " ".join(document)
                if key in seen:  # the same docstring is often repeated across overloads
                    continue
                seen.add(key)
                block = "\n".join(document) + "\n\n"
                f.write(block)
                documents += 1
                sentences += len(document)
                size += len(block.encode("utf-8"))
            if size >= max_bytes:
                break
    return documents, sentences, size
