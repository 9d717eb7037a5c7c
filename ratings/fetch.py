"""Fetching MovieLens-100K: from GroupLens, or else from the copy inside PyPI's recbole wheel.

GroupLens is the source of record; the recbole==1.2.1 wheel carries the same 100,000 ratings and
is reachable wherever PyPI is (GroupLens is not reachable from every build machine).
"""
import logging
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

from ratings import canonical, importers
from ratings.errors import DataError

GROUPLENS_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_100K_DIR = "recbole/dataset_example/ml-100k/"
DATASETS = ("movielens-100k",)


def fetch(name: str, dest: pathlib.Path, rating_range: importers.RatingRange,
          timeout_s: float = 20.0) -> canonical.ImportSummary:
    """Downloads dataset `name` and writes it in the canonical layout to `dest`."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    with tempfile.TemporaryDirectory(prefix="movierec-fetch-") as tmp:
        work = pathlib.Path(tmp)
        try:
            folder = _download_grouplens(work, timeout_s)
            logging.info("Downloaded %s", GROUPLENS_100K_URL)
            return importers.import_dataset("movielens-100k", folder, dest, rating_range)
        except (urllib.error.URLError, OSError, zipfile.BadZipFile) as e:
            logging.warning("GroupLens download failed (%s); using the copy in %s",
                            e, RECBOLE_REQUIREMENT)
        folder = _extract_recbole(work)
        try:
            return importers.import_recbole_100k(folder, dest, rating_range)
        except ValueError as e:
            raise DataError(str(e)) from e


def _download_grouplens(work: pathlib.Path, timeout_s: float) -> pathlib.Path:
    archive = work / "ml-100k.zip"
    with urllib.request.urlopen(GROUPLENS_100K_URL, timeout=timeout_s) as response, \
            open(archive, "wb") as out:
        shutil.copyfileobj(response, out)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(work)
    return work / "ml-100k"


def _extract_recbole(work: pathlib.Path) -> pathlib.Path:
    wheels = work / "wheels"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               RECBOLE_REQUIREMENT, "--dest", str(wheels)]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(wheels.glob("recbole-*.whl"))
    if result.returncode != 0 or not found:
        raise DataError(f"could not download {RECBOLE_REQUIREMENT} from PyPI either: "
                        f"{result.stderr.strip().splitlines()[-1:] or 'no wheel'}")
    folder = work / "ml-100k"
    folder.mkdir()
    with zipfile.ZipFile(found[0]) as zf:
        for name in zf.namelist():
            if name.startswith(RECBOLE_100K_DIR) and name.endswith((".inter", ".item", ".user")):
                (folder / pathlib.Path(name).name).write_bytes(zf.read(name))
    return folder
