"""A digest of the code the pipeline's components run, so TFX's cache notices code changes.

Transform and Trainer name their functions by module path (`models.preprocessing...`), and the
custom components by executor class, so TFX's cache key holds names, not code: after an edit, a
run on the same data would reuse outputs of the old code (or feed them to new code that expects
more). The pipeline passes this digest in their `custom_config`, which is part of the cache key.
It covers every package whose code runs inside a component: the data format (ExampleGen parses
with it), the model code and the components themselves, and the serving contract the export uses.
"""
import hashlib
import pathlib

KEY = "code_version"
REPO = pathlib.Path(__file__).resolve().parents[1]
# Packages (folders, searched recursively) whose code components execute.
PACKAGES = ("components", "models", "ratings", "serving/contract.py")


def digest(root: pathlib.Path = REPO, packages=PACKAGES) -> str:
    """sha256 over the relative paths and contents of the packages' Python files."""
    hasher = hashlib.sha256()
    for package in packages:
        path = root / package
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            hasher.update(file.relative_to(root).as_posix().encode())
            hasher.update(file.read_bytes())
    return hasher.hexdigest()
