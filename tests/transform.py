"""Running preprocessing_fn through tf.Transform on in-memory rows, as TFX's Transform would."""
import pathlib
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from ratings import features
from models import catalog
from models.preprocessing import preprocessing_fn

# Raw features as ExampleGen emits them: IDs, rating and timestamp always; side features optional.
RAW_SPEC = {
    features.USER_ID: tf.io.FixedLenFeature([1], tf.string),
    features.MOVIE_ID: tf.io.FixedLenFeature([1], tf.string),
    features.RATING: tf.io.FixedLenFeature([1], tf.float32),
    features.TIMESTAMP: tf.io.FixedLenFeature([1], tf.int64),
    **{key: tf.io.VarLenFeature(tf.int64) for key in (features.YEAR, features.AGE)},
    **{key: tf.io.VarLenFeature(tf.string)
       for key in (features.TITLE, features.GENRES, features.GENDER, features.OCCUPATION)},
}


def raw_row(user: bytes, movie: bytes, rating: float, **side):
    """One raw example; side features (title=..., genres=[...], year=...) default to absent."""
    row = {key: [] for key in RAW_SPEC}
    row.update({features.USER_ID: [user], features.MOVIE_ID: [movie], features.RATING: [rating],
                features.TIMESTAMP: [0]})
    for key, value in side.items():
        row[key] = value if isinstance(value, list) else [value]
    return row


def analyze_and_transform(rows, folder: pathlib.Path):
    """(transformed rows, TFTransformOutput written to `folder`) for raw rows."""
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=folder)):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(folder / "transform"))
    # TFX's Transform also records the raw schema; the export parses requests with it.
    metadata_io.write_metadata(metadata, str(folder / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
    return transformed, tft.TFTransformOutput(str(folder / "transform"))


def catalogue_batch(rows, transformed, output):
    """(the catalogue catalog.build makes of the transformed rows, as the Trainer does; the training
    batch: the transformed features stacked, with the raw rows' timestamps)."""
    batch = {key: np.stack([r[key] for r in transformed]) for key in transformed[0]}
    batch[features.TIMESTAMP] = np.array([r[features.TIMESTAMP][0] for r in rows], np.int64)
    return catalog.build(output, [{k: tf.constant(v) for k, v in batch.items()}]), batch


# --- The unit tests' one tf.Transform run (tests/unit/conftest.py `shared_transform`): a run costs
# ~5-6 CPU-s of Beam whatever the rows, so test_export's, test_retrieval's and test_preprocessing's
# worlds are planted side by side in one set of rows (no user or movie in common) and each test
# derives what it expects from these rows, never from the other worlds' absence.

# test_export's tiny catalogue: titles ("Alpha" twice, by case), who rated what (m1 the most rated
# of its movies, m4 the least), years (m3's unknown) and user side features (u4 unknown).
TITLES = {"m1": "Alpha", "m2": "Beta", "m3": "Gamma", "m4": "alpha"}
RATED = {"u1": ["m1", "m2"], "u2": ["m2", "m3"], "u3": ["m1", "m3", "m4"], "u4": ["m1"]}
YEARS = {"m1": [1977], "m2": [1994], "m3": [], "m4": [1995]}
USERS = {"u1": (24, b"F", b"writer"), "u2": (53, b"M", b"doctor"), "u3": (33, b"F", b"writer")}


def export_side_row(user, movie):
    """The side features ExampleGen would have joined onto a rating; empty lists where unknown."""
    keys = (features.AGE, features.GENDER, features.OCCUPATION)
    values = USERS.get(user)
    return {features.YEAR: YEARS[movie], **{key: [values[i]] if values else [] for i, key in enumerate(keys)}}


EXPORT_ROWS = [raw_row(u.encode(), m.encode(), 4.0 if m in ("m1", "m3") else 2.0, title=TITLES[m].encode(),
                       genres=b"Drama", **export_side_row(u, m))
               for u, movies in RATED.items() for m in movies]

# test_retrieval's planted catalogue: two groups of users, each watching (rating 2) most of its own
# group's ten movies, and three "cult" movies rated 5 by two users of group B.
GROUP_USERS, GROUP_MOVIES, WATCHED, CULT = 20, 10, 7, 3


def planted_ratings(seed=0):
    """[(user, movie, rating)], {user: the group movies they did not watch} for group A users."""
    rng = np.random.default_rng(seed)
    rows, unwatched = [], {}
    for group in "ab":
        for u in range(GROUP_USERS):
            user = f"{group}-u{u}"
            watched = rng.choice(GROUP_MOVIES, WATCHED, replace=False)
            rows += [(user, f"{group}-m{m}", 2.0) for m in watched]
            if group == "a":
                unwatched[user] = {f"a-m{m}" for m in set(range(GROUP_MOVIES)) - set(watched)}
    rows += [(f"b-u{u}", f"cult-m{c}", 5.0) for c in range(CULT) for u in range(2)]
    return rows, unwatched


# test_preprocessing's four ratings: "ann lee" (an ID with a space) rated p1 once; pu rated p1 in
# one span (3.0 at t=50), p2, and p1 again in a later span (1.0 at t=70).
ANN, PU, P1, P2 = b"ann lee", b"pu", b"p1", b"p2"


def _side_row(user, movie, rating, title=None, timestamp=0):
    side = {features.TITLE: title, features.GENRES: [b"Drama", b"War"], features.YEAR: 1998} if title else {}
    return raw_row(user, movie, rating, **side, **{features.TIMESTAMP: timestamp})


PREPROCESSING_ROWS = [_side_row(ANN, P1, 4.0, b"One", 10), _side_row(PU, P1, 3.0, b"One", 50),
                      _side_row(PU, P2, 5.0, None, 60), _side_row(PU, P1, 1.0, b"One", 70)]
SHARED_ROWS = EXPORT_ROWS + [raw_row(u.encode(), m.encode(), r, title=m.encode()) for u, m, r in planted_ratings()[0]] + \
    PREPROCESSING_ROWS
