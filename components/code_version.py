"""A digest of this package's source, so TFX's cache notices code changes.

Transform and Trainer name their functions by module path (`components.preprocessing...`), so
TFX's cache key holds the path, not the code: after an edit to `components/`, a run on the same
data would reuse outputs of the old code (or feed them to new code that expects more). The
pipeline passes this digest in their `custom_config`, which is part of the cache key.
"""
import hashlib
import pathlib

KEY = "code_version"
PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


def digest(package_dir: pathlib.Path = PACKAGE_DIR) -> str:
    """sha256 over the names and contents of the package's Python files."""
    hasher = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        hasher.update(path.name.encode())
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def without_version(custom_config: dict) -> dict:
    """The custom_config a component's code reads, without the digest."""
    return {key: value for key, value in custom_config.items() if key != KEY}
