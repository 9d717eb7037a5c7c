"""Embeddings as a product: projector files, the genre map, and a sanity check on MovieLens-100K."""
import csv

import numpy as np
import tensorflow as tf

from models import embeddings
from models.artifacts import MAP_FILE
from models.features import MOVIE_XF, USER_XF
from models.scoring import movie_vectors
from movierec.data import features
from models.catalog import Catalog
from models.hyperparameters import Hyperparameters
from models.model import build_model


def small_catalog(num_movies=40):
    genres = [b"Action|Sci-Fi", b"Comedy", b"Drama|Romance", b""]
    return Catalog(
        user_ids=np.array([b"u1"], dtype=object),
        movie_ids=np.array([f"m{i}".encode() for i in range(num_movies)], dtype=object),
        titles=np.array([f"Film\t{i}".encode() for i in range(num_movies)], dtype=object),
        genres=np.array([genres[i % 4] for i in range(num_movies)], dtype=object),
        seen_row_splits=np.array([0, 0, 0]), seen_movies=np.zeros(0, np.int64),
        seen_ratings=np.zeros(0, np.float32))


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


def test_movielens_neighbours_share_genres_more_than_random_movies(movielens_100k):
    """Train the seed model on all of MovieLens-100K; neighbours of its 50 most-rated films
    share a genre with them far more often than random films do."""
    with open(movielens_100k / features.RATINGS_FILE) as f:
        rows = list(csv.DictReader(f))
    with open(movielens_100k / features.MOVIES_FILE, encoding="utf-8") as f:
        genres_by_id = {r[features.MOVIE_ID]: r[features.GENRES].encode() for r in csv.DictReader(f)}
    movie_counts = {}
    for r in rows:
        movie_counts[r[features.MOVIE_ID]] = movie_counts.get(r[features.MOVIE_ID], 0) + 1
    movie_ids = sorted(movie_counts, key=lambda m: -movie_counts[m])  # vocabulary order
    user_ids = sorted({r[features.USER_ID] for r in rows})
    movie_index = {m: i for i, m in enumerate(movie_ids)}
    user_index = {u: i for i, u in enumerate(user_ids)}
    inputs = {
        USER_XF: np.array([[user_index[r["user_id"]]] for r in rows]),
        MOVIE_XF: np.array([[movie_index[r["movie_id"]]] for r in rows]),
    }
    ratings = np.array([float(r["rating"]) for r in rows], dtype="float32")
    tf.keras.utils.set_random_seed(0)
    model = build_model(len(user_ids), len(movie_ids), float(ratings.mean()),
                        Hyperparameters(embedding_dim=32, learning_rate=0.005, l2=0.1))
    model.fit(inputs, ratings, batch_size=512, epochs=8, verbose=0)

    genres = [genres_by_id[m] for m in movie_ids]
    near, random = embeddings.genre_agreement(movie_vectors(model).numpy(), genres, range(50), k=10)
    print(f"neighbours sharing a genre: {near:.1%}; random movies: {random:.1%}")
    assert near > random + 0.15
