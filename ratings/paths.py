"""Paths that may be local or on object storage (gs://, s3://), handled one way everywhere.

Why this module: `pathlib` and `os.path.normpath` collapse the `//` of `gs://BUCKET/x` into
`gs:/BUCKET/x`, which then reads as a local relative path; `open`/`os.path.exists` never reach
a bucket. Everything here goes through TFX's `fileio` (TensorFlow's filesystems underneath,
the same ones TFX's components, tf.data and SavedModel use), and joins with `posixpath`, which
leaves a scheme's `//` alone. Local paths are accepted everywhere and behave as before.

TensorFlow 2.16 reads gs:// itself; s3:// (and hdfs://) need tensorflow-io's filesystem plugins,
loaded by `register_filesystems` for the schemes a run uses.
"""
import os
import pathlib
import posixpath
import re
import sys
from typing import Dict, List

# A URI scheme as RFC 3986 spells it, followed by "://".
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Schemes TensorFlow 2.16 has no filesystem for; tensorflow-io's plugins register them.
_TENSORFLOW_IO_SCHEMES = ("s3", "hdfs", "az")


def _fileio():
    """TFX's fileio, imported on first use: it imports TensorFlow (~20 s), which commands that
    only print settings never need."""
    from tfx.dsl.io import fileio

    return fileio


def scheme(path: str) -> str:
    """"gs" for gs://bucket/x, "" for a local path."""
    match = _SCHEME.match(str(path))
    return match.group(1).lower() if match else ""


def is_remote(path: str) -> bool:
    """gs://, s3:// and the like: object stores and other filesystems reached by URI."""
    return bool(scheme(path))


def register_filesystems(*paths: str) -> None:
    """Loads tensorflow-io's filesystem plugins when a path needs one (s3://), so TensorFlow,
    and with it TFX's fileio, can read and write it. Importing it registers the schemes."""
    if any(scheme(path) in _TENSORFLOW_IO_SCHEMES for path in paths):
        import tensorflow_io  # noqa: F401


def tensorflow_io_loaded() -> bool:
    """Whether this process loaded tensorflow-io's filesystems (and so must skip its teardown:
    movierec.cli.entry)."""
    return "tensorflow_io" in sys.modules


def join(base: str, *parts: str) -> str:
    """`base/part/...`, keeping a URI's `scheme://` intact (unlike pathlib and normpath)."""
    return posixpath.join(str(base), *map(str, parts)) if is_remote(base) else os.path.join(base, *parts)


def parent(path: str) -> str:
    """The folder holding `path` (a trailing slash ignored): gs://b/serving/m -> gs://b/serving."""
    path = str(path)
    stripped = path.rstrip("/") or path
    return posixpath.dirname(stripped) if is_remote(path) else os.path.dirname(os.path.normpath(path))


def name(path: str) -> str:
    """The last component of `path` (a trailing slash ignored)."""
    return posixpath.basename(str(path).rstrip("/"))


def absolute(path: str) -> str:
    """Local paths made absolute (a run's cwd is not a component's); URIs stay as they are."""
    return str(path) if is_remote(path) else str(pathlib.Path(path).resolve())


def exists(path: str) -> bool:
    return _fileio().exists(str(path))


def isdir(path: str) -> bool:
    return _fileio().isdir(str(path))


def isfile(path: str) -> bool:
    return _fileio().exists(str(path)) and not _fileio().isdir(str(path))


def glob(pattern: str) -> List[str]:
    """Matches, sorted (object stores list in key order, local filesystems in any order)."""
    return sorted(_fileio().glob(str(pattern)))


def children(folder: str) -> List[str]:
    """Names directly inside `folder`, without the trailing "/" object stores add to folders."""
    if not _fileio().isdir(str(folder)):
        return []
    return sorted(child.rstrip("/") for child in _fileio().listdir(str(folder)))


def write_bytes(path: str, data: bytes) -> None:
    with _fileio().open(str(path), "wb") as f:
        f.write(data)


def write_files(directory: str, files: Dict[str, str]) -> None:
    """Writes each {name: text} into `directory` atomically (written beside, then renamed over), so
    a server polling a file (TF Serving re-reading models.config) never reads half of it."""
    for name, text in files.items():
        path = join(directory, name)
        with _fileio().open(f"{path}.tmp", "w") as f:
            f.write(text)
        _fileio().rename(f"{path}.tmp", path, overwrite=True)


def read_bytes(path: str) -> bytes:
    with _fileio().open(str(path), "rb") as f:
        return f.read()
