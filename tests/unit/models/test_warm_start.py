"""Warm start: rows follow their IDs across re-ranked vocabularies; new IDs start fresh."""
import numpy as np
import tensorflow as tf

from models.rating import model as model_lib, warm_start
from models.catalog import Catalog
from models.hyperparameters import Hyperparameters

HPARAMS = Hyperparameters(embedding_dim=3)


def catalog(users, movies):
    ids = lambda values: np.array([v.encode() for v in values], dtype=object)
    return Catalog(user_ids=ids(users), movie_ids=ids(movies), titles=ids([""] * len(movies)),
                   genres=ids([""] * len(movies)), seen_row_splits=np.zeros(len(users) + 2, np.int64),
                   seen_movies=np.zeros(0, np.int64), seen_ratings=np.zeros(0, np.float32),
                   seen_timestamps=np.zeros(0, np.int64))


def save_base(path, model, base_catalog):
    """What export.py saves for the next run: the tables and the IDs of their rows."""
    base = tf.Module()
    base.user_ids = tf.Variable(base_catalog.user_ids.astype(bytes))
    base.movie_ids = tf.Variable(base_catalog.movie_ids.astype(bytes))
    base.warm_start_tables = {name: model.get_layer(name).embeddings for name in
                              warm_start.USER_TABLES + warm_start.MOVIE_TABLES}
    base.warm_start_tables[model_lib.GLOBAL_MEAN] = model.get_layer(model_lib.GLOBAL_MEAN).bias
    tf.saved_model.save(base, str(path))


def test_rows_follow_ids_and_new_ids_start_fresh(tmp_path):
    old = model_lib.build_model(2, 3, 3.7, HPARAMS)
    save_base(tmp_path / "base", old, catalog(["u1", "u2"], ["m1", "m2", "m3"]))
    # The new vocabulary is re-ranked, drops m3 and adds u3 and m4.
    new_catalog = catalog(["u2", "u3", "u1"], ["m2", "m4", "m1"])
    new = model_lib.build_model(3, 3, 3.0, Hyperparameters(embedding_dim=3, seed=7))
    fresh_u3 = new.get_layer(model_lib.USER_EMBEDDING).embeddings.numpy()[1].copy()
    message = warm_start.warm_start(new, str(tmp_path / "base"), new_catalog)
    assert "2 of 3 users and 2 of 3 movies carried over" in message
    old_users = old.get_layer(model_lib.USER_EMBEDDING).embeddings.numpy()
    new_users = new.get_layer(model_lib.USER_EMBEDDING).embeddings.numpy()
    np.testing.assert_array_equal(new_users[0], old_users[1])  # u2
    np.testing.assert_array_equal(new_users[2], old_users[0])  # u1
    np.testing.assert_array_equal(new_users[1], fresh_u3)
    old_movies = old.get_layer(model_lib.MOVIE_EMBEDDING).embeddings.numpy()
    np.testing.assert_array_equal(new.get_layer(model_lib.MOVIE_EMBEDDING).embeddings.numpy()[2], old_movies[0])
    assert float(new.get_layer(model_lib.GLOBAL_MEAN).bias.numpy()) == np.float32(3.7)


def test_an_incompatible_base_is_skipped_with_a_reason(tmp_path):
    old = model_lib.build_model(2, 3, 3.7, Hyperparameters(embedding_dim=5))
    save_base(tmp_path / "wider", old, catalog(["u1", "u2"], ["m1", "m2", "m3"]))
    tf.saved_model.save(tf.Module(), str(tmp_path / "older_export"))
    new = model_lib.build_model(2, 3, 3.0, HPARAMS)
    before = new.get_layer(model_lib.USER_EMBEDDING).embeddings.numpy().copy()
    new_catalog = catalog(["u1", "u2"], ["m1", "m2", "m3"])
    assert "embedding size changed" in warm_start.warm_start(new, str(tmp_path / "wider"), new_catalog)
    assert "predates warm-start tables" in warm_start.warm_start(new, str(tmp_path / "older_export"), new_catalog)
    np.testing.assert_array_equal(new.get_layer(model_lib.USER_EMBEDDING).embeddings.numpy(), before)
