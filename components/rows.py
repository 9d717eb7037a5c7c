"""The ratings of Examples artifacts as numpy arrays: the rows the model gates score models on.

One reader for the RankingEvaluator, the baselines gate, the yardstick and the ranking benchmark,
so "the same rows" is true by construction: the eval split of this run's validated examples, and
the training rows as the Trainer fits them (the train splits of every span in the rolling window,
the newest rating of each re-rated pair, models/catalog.py).
"""
import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from models.metrics import ranking
from models.catalog import newest_per_pair
from ratings import features, ids

TRAIN, EVAL = "train", "eval"
# ExampleGen's custom property on Examples (copied by the ValidationGate): the span ingested.
SPAN = "span"


@dataclasses.dataclass(frozen=True)
class Rows:
    users: np.ndarray       # IDs as bytes
    movies: np.ndarray
    ratings: np.ndarray     # float32
    timestamps: np.ndarray  # int64, Unix seconds

    def __len__(self) -> int:
        return len(self.ratings)

    def newest_per_pair(self) -> "Rows":
        """The newest rating of each (user, movie) pair, as the Trainer keeps it, in the order of
        sorting by the IDs: sorted by their codes, which keep the IDs' order (ratings/ids.py), so
        without comparing 10M pairs of bytes objects."""
        keep = newest_per_pair(ids.sorted_codes(self.users)[1], ids.sorted_codes(self.movies)[1], self.timestamps)
        return Rows(self.users[keep], self.movies[keep], self.ratings[keep], self.timestamps[keep])

    @classmethod
    def concatenate(cls, parts: Sequence["Rows"]) -> "Rows":
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))


COLUMNS = {features.USER_ID: tf.string, features.MOVIE_ID: tf.string, features.RATING: tf.float32,
           features.TIMESTAMP: tf.int64}


def split_batches(examples: types.Artifact, split: str, keys: Sequence[str] = tuple(COLUMNS)) -> tf.data.Dataset:
    """Batches of {key: values} of one split of an Examples artifact (gzipped tf.Examples, as
    ExampleGen writes them), for `keys` of COLUMNS: what a reader streams when it must not hold
    every column of 10M ratings at once (components/servable_export)."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    files = sorted(fileio.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{pattern}: no examples in split '{split}'")
    spec = {key: tf.io.FixedLenFeature([], COLUMNS[key]) for key in keys}
    return tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65536).map(
        lambda batch: tf.io.parse_example(batch, spec))


def read_split(examples: types.Artifact, split: str) -> Rows:
    """One split of an Examples artifact, every column."""
    columns = {key: [] for key in COLUMNS}
    for batch in split_batches(examples, split):
        for key in COLUMNS:
            columns[key].append(batch[key].numpy())
    return Rows(*(np.concatenate(columns[key]) for key in COLUMNS))


def training_rows(training_examples: Sequence[types.Artifact]) -> Rows:
    """What the Trainer fitted on: the train splits of every artifact given (the rolling window of
    spans, or this run's examples), the newest rating of each pair."""
    return Rows.concatenate([read_split(e, TRAIN) for e in training_examples]).newest_per_pair()


def span(examples: types.Artifact) -> int:
    return examples.get_int_custom_property(SPAN)


def this_run_and_earlier(window: Sequence[types.Artifact]) -> Tuple[types.Artifact, List[types.Artifact]]:
    """This run's examples and the earlier spans' in a training window (the span-window resolver's,
    or this run's examples alone). ExampleGen ingests the newest span, so this run's is the newest
    (of two ingestions of it, the later). Gates take it from the window rather than as a second
    input: TFX's Airflow launcher cannot record one artifact under two input keys of a component
    (tests/unit/pipeline/test_output_names.py)."""
    this_run = max(window, key=lambda examples: (span(examples), examples.id))
    return this_run, [examples for examples in window if span(examples) < span(this_run)]


def eval_set(train: Rows, test: Rows, activity_bounds: Optional[Sequence[int]] = None) -> ranking.EvalSet:
    """The EvalSet of training and eval rows: what every model's lists are scored on."""
    return ranking.EvalSet.from_rows(train.users, train.movies, test.users, test.movies, test.ratings,
                                     activity_bounds=activity_bounds)


def read_eval_set(examples: types.Artifact, activity_bounds: Optional[Sequence[int]],
                  training_examples: Optional[Sequence[types.Artifact]] = None) -> ranking.EvalSet:
    """The EvalSet of the eval split of `examples` against the training rows of
    `training_examples` (default: the train split of `examples` itself)."""
    return eval_set(training_rows(training_examples or [examples]), read_split(examples, EVAL), activity_bounds)
