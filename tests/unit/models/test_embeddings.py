"""Embeddings as a product: projector files, the genre map, genre agreement on planted clusters.

The same check on all of MovieLens-100K is an end-to-end test (tests/e2e/test_embedding_quality.py)."""

import numpy as np

from models import embeddings
from models.artifacts import MAP_FILE
from models.catalog import Catalog


def small_catalog(num_movies=40):
    genres = [b"Action|Sci-Fi", b"Comedy", b"Drama|Romance", b""]
    return Catalog(
        user_ids=np.array([b"u1"], dtype=object),
        movie_ids=np.array([f"m{i}".encode() for i in range(num_movies)], dtype=object),
        titles=np.array([f"Film\t{i}".encode() for i in range(num_movies)], dtype=object),
        genres=np.array([genres[i % 4] for i in range(num_movies)], dtype=object),
        seen_row_splits=np.array([0, 0, 0]), seen_movies=np.zeros(0, np.int64),
        seen_ratings=np.zeros(0, np.float32), seen_timestamps=np.zeros(0, np.int64))


def test_projector_files_and_map(tmp_path):
    catalog = small_catalog()
    vectors = np.random.default_rng(0).normal(size=(40, 8))
    embeddings.write_projector(str(tmp_path), catalog, vectors)
    embeddings.write_map(str(tmp_path / MAP_FILE), catalog, vectors)
    rows = (tmp_path / embeddings.METADATA_FILE).read_text().splitlines()
    assert rows[0] == "movie_id\ttitle\tgenres" and len(rows) == 41
    assert rows[1] == "m0\tFilm 0\tAction|Sci-Fi"  # tabs inside titles cannot break the TSV
    assert np.loadtxt(tmp_path / embeddings.VECTORS_FILE, delimiter="\t").shape == (40, 8)
    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert embeddings.VECTORS_FILE in config and embeddings.METADATA_FILE in config
    assert (tmp_path / MAP_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_genre_agreement_on_synthetic_clusters():
    genres = [b"Action"] * 20 + [b"Comedy"] * 20
    vectors = np.concatenate([np.random.default_rng(1).normal([5, 0], 1, (20, 2)),
                              np.random.default_rng(2).normal([-5, 0], 1, (20, 2))])
    near, random = embeddings.genre_agreement(vectors, genres, queries=range(40), k=5)
    assert near == 1.0 and 0.3 < random < 0.7
