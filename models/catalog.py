"""The catalogue the exported model carries: IDs and titles by index, and who rated what (how).

Built by the Trainer from Transform's vocabularies and one pass over the transformed training
examples, so serving needs no side files: recommendations come back with titles, and "exclude
what this user already rated" is answered inside the model.
"""
import dataclasses
import io
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.features import MOVIE_XF, RATING_XF, USER_XF, transformed_name, vocabulary_id, vocabulary_name
from ratings import paths
from ratings import features

SCAN_BATCH = 8192
# What `save` keeps of the ratings: their count and what the rating model's layers are built
# with (the mean starts the global bias; the range clips every prediction).
RATING_STATS = ("count", "mean", "min", "max")
_TEXT = features.UNKNOWN_TEXT.encode()
# What the catalogue records per movie / per user index: (Catalog attribute, feature, unknown value).
MOVIE_FIELDS = (("titles", features.TITLE, _TEXT), ("genres", features.GENRES, _TEXT),
                ("years", features.YEAR, features.UNKNOWN_INT))
USER_FIELDS = (("ages", features.AGE, features.UNKNOWN_INT), ("genders", features.GENDER, _TEXT),
               ("occupations", features.OCCUPATION, _TEXT))


@dataclasses.dataclass
class Catalog:
    user_ids: np.ndarray      # [num_users] bytes, vocabulary order
    movie_ids: np.ndarray     # [num_movies] bytes, vocabulary order
    titles: np.ndarray        # [num_movies] bytes, b"" where unknown
    genres: np.ndarray        # [num_movies] bytes, "|"-joined, b"" where unknown
    seen_row_splits: np.ndarray  # [num_users + 2] int64: ragged rows per user index, OOV last
    seen_movies: np.ndarray   # [ratings] int64 movie indices, grouped by user
    seen_ratings: np.ndarray  # [ratings] float32, the ratings given, aligned with seen_movies
    seen_timestamps: np.ndarray  # [ratings] int64 Unix seconds of those ratings (empty when loaded)
    # Side features by index (-1 / b"" where unknown); None when built without them.
    years: Optional[np.ndarray] = None        # [num_movies] int
    ages: Optional[np.ndarray] = None         # [num_users] int
    genders: Optional[np.ndarray] = None      # [num_users] bytes
    occupations: Optional[np.ndarray] = None  # [num_users] bytes

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_movies(self) -> int:
        return len(self.movie_ids)

    def seen_users(self) -> np.ndarray:
        """[ratings] the user index of each entry of seen_movies / seen_ratings."""
        return np.repeat(np.arange(len(self.seen_row_splits) - 1), np.diff(self.seen_row_splits))

    def training_inputs(self) -> Dict[str, np.ndarray]:
        """The model's inputs for every (user, movie) rated, aligned with seen_ratings."""
        return {USER_XF: self.seen_users()[:, np.newaxis], MOVIE_XF: self.seen_movies[:, np.newaxis]}


def vocabulary(tf_transform_output: tft.TFTransformOutput, key: str) -> np.ndarray:
    return np.array([vocabulary_id(line) for line in
                     tf_transform_output.vocabulary_by_name(vocabulary_name(key))], dtype=object)


def newest_per_pair(users: np.ndarray, movies: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Indices of the newest rating (by timestamp) of each (user, movie) pair, by user then movie."""
    # By user, movie, then time: the last entry of each (user, movie) run is its newest rating.
    order = np.lexsort((timestamps, movies, users))
    users, movies = users[order], movies[order]
    newest = np.ones(len(order), bool)
    newest[:-1] = (users[1:] != users[:-1]) | (movies[1:] != movies[:-1])
    return order[newest]


def build(tf_transform_output: tft.TFTransformOutput, examples: tf.data.Dataset) -> Catalog:
    """Scans batches of transformed training features (dicts, with the raw timestamp) once.

    A (user, movie) pair is rated once per span (ExampleGen refuses a pair twice in one run), but
    the rolling window holds several spans, and a user may re-rate a movie in a later one: the
    newest rating (by timestamp) replaces the older ones, so the model trains on what the user
    thinks now. (The hash split keys on the pair, so every rating of it is in the same split.)
    """
    user_ids = vocabulary(tf_transform_output, features.USER_ID)
    movie_ids = vocabulary(tf_transform_output, features.MOVIE_ID)
    by_id = [(USER_XF, len(user_ids), USER_FIELDS), (MOVIE_XF, len(movie_ids), MOVIE_FIELDS)]
    fields = {attribute: np.full(size, unknown, dtype=object)
              for _, size, table in by_id for attribute, _, unknown in table}
    users, movies, ratings, timestamps = [], [], [], []
    for batch in examples:
        indices = {}
        for index_key, size, table in by_id:
            index = indices[index_key] = batch[index_key].numpy().reshape(-1)
            known = index < size
            for attribute, key, _ in table:
                fields[attribute][index[known]] = batch[transformed_name(key)].numpy().reshape(-1)[known]
        users.append(indices[USER_XF])
        movies.append(indices[MOVIE_XF])
        ratings.append(batch[RATING_XF].numpy().reshape(-1))
        timestamps.append(batch[features.TIMESTAMP].numpy().reshape(-1))
    users = np.concatenate(users) if users else np.zeros(0, np.int64)
    movies = np.concatenate(movies) if movies else np.zeros(0, np.int64)
    ratings = np.concatenate(ratings).astype(np.float32) if ratings else np.zeros(0, np.float32)
    timestamps = np.concatenate(timestamps) if timestamps else np.zeros(0, np.int64)
    keep = newest_per_pair(users, movies, timestamps)
    users, movies, ratings, timestamps = users[keep], movies[keep], ratings[keep], timestamps[keep]
    # One row per user index plus an empty row for the OOV index.
    counts = np.bincount(users, minlength=len(user_ids) + 1)[: len(user_ids) + 1]
    row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Catalog(user_ids=user_ids, movie_ids=movie_ids, seen_row_splits=row_splits,
                   seen_movies=movies.astype(np.int64), seen_ratings=ratings,
                   seen_timestamps=timestamps.astype(np.int64), **fields)


def save(catalog: Catalog, path: str) -> None:
    """Writes the catalogue without its ratings, and RATING_STATS of them: what rebuilding the
    rating model needs (servable.py). The ratings are the Trainer's; a servable gets its own seen
    tables. IDs and texts as fixed-width bytes, so reading needs no pickle."""
    kinds = {"user_ids": bytes, "movie_ids": bytes,
             **{name: type(unknown) for name, _, unknown in MOVIE_FIELDS + USER_FIELDS}}
    arrays = {name: np.asarray(getattr(catalog, name)).astype(np.int64 if kind is int else bytes)
              for name, kind in kinds.items() if getattr(catalog, name) is not None}
    ratings = catalog.seen_ratings
    stats = (len(ratings), ratings.mean(), ratings.min(), ratings.max()) if len(ratings) else (0, 0.0, 0.0, 0.0)
    buffer = io.BytesIO()
    np.savez(buffer, rating_stats=np.array(stats, np.float64), **arrays)
    paths.write_bytes(path, buffer.getvalue())


def load(path: str) -> Tuple[Catalog, Dict[str, float]]:
    """(the catalogue `save` wrote, with no ratings; {RATING_STATS name: value})."""
    stored = np.load(io.BytesIO(paths.read_bytes(path)), allow_pickle=False)
    arrays = {name: stored[name].astype(object) if stored[name].dtype.kind == "S" else stored[name]
              for name in stored.files if name != "rating_stats"}
    stats = dict(zip(RATING_STATS, stored["rating_stats"].tolist()))
    num_users = len(arrays["user_ids"])
    return Catalog(seen_row_splits=np.zeros(num_users + 2, np.int64), seen_movies=np.zeros(0, np.int64),
                   seen_ratings=np.zeros(0, np.float32), seen_timestamps=np.zeros(0, np.int64), **arrays), stats
