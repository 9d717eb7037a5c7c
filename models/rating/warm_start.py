"""Warm start: a new model begins where the last blessed one left off, by ID, not by index.

Vocabularies are re-ranked by frequency every run, so row i of an old table is generally not the
same user or movie as row i of the new one. Rows are copied for the IDs both vocabularies share;
new users and movies keep their fresh rows, and IDs that dropped out are not carried over.
The retrieval head's tables (models/retrieval/history_head.py) are not carried: they are a closed-form function of
the training ratings, recomputed in full every run, so there is nothing for them to start from.
"""
from typing import Dict

import numpy as np
import tensorflow as tf

from models.rating import model as model_lib
from models.catalog import Catalog

# Tables keyed by user ID or by movie ID, by layer name.
USER_TABLES = (model_lib.USER_EMBEDDING, model_lib.USER_BIAS)
MOVIE_TABLES = (model_lib.MOVIE_EMBEDDING, model_lib.MOVIE_BIAS)


def _copy_rows(new: tf.Variable, old: np.ndarray, new_ids: np.ndarray, old_ids: np.ndarray) -> int:
    old_index = {key: i for i, key in enumerate(old_ids)}
    pairs = [(i, old_index[key]) for i, key in enumerate(new_ids) if key in old_index]
    if not pairs:
        return 0
    rows = new.numpy()
    target, source = map(np.array, zip(*pairs))
    rows[target] = old[source]
    new.assign(rows)
    return len(pairs)


def warm_start(model: tf.keras.Model, base_model_dir: str, catalog: Catalog) -> str:
    """Copies the base export's rows into `model` by ID; returns what was done, for the log."""
    base = tf.saved_model.load(base_model_dir)
    if not hasattr(base, "warm_start_tables"):
        return f"not warm-started: {base_model_dir} predates warm-start tables (exported by an older movierec)"
    tables: Dict[str, tf.Variable] = base.warm_start_tables
    old_users = np.array(base.user_ids.numpy(), dtype=object)
    old_movies = np.array(base.movie_ids.numpy(), dtype=object)
    layers = {name: model.get_layer(name).embeddings for name in USER_TABLES + MOVIE_TABLES}
    if any(layers[name].shape[1] != tables[name].shape[1] for name in layers):
        return "not warm-started: the embedding size changed since the base model"
    users = movies = 0
    for name, variable in layers.items():
        by_user = name in USER_TABLES
        copied = _copy_rows(variable, tables[name].numpy(), catalog.user_ids if by_user else catalog.movie_ids,
                            old_users if by_user else old_movies)
        users, movies = (copied, movies) if by_user else (users, copied)
    model.get_layer(model_lib.GLOBAL_MEAN).bias.assign(tables[model_lib.GLOBAL_MEAN].numpy())
    return (f"warm-started from {base_model_dir}: {users:,} of {catalog.num_users:,} users and "
            f"{movies:,} of {catalog.num_movies:,} movies carried over; the rest start fresh")
