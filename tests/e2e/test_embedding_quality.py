"""Embeddings as a product, on real data: the seed model trained on all of MovieLens-100K puts
movies of a genre near each other (a quality check that takes a minute, so not in the fast loop)."""
import csv

import numpy as np
import tensorflow as tf

from models import embeddings
from models.features import MOVIE_XF, USER_XF
from models.hyperparameters import Hyperparameters
from models.rating.model import build_model
from models.rating.scoring import movie_vectors
from ratings import features


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
