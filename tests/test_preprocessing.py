"""preprocessing_fn through tf.Transform: vocabularies by frequency, one OOV bucket for unseen IDs."""
import tempfile

import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components import features
from components.preprocessing import preprocessing_fn

RAW_SPEC = {
    features.USER_ID: tf.io.FixedLenFeature([1], tf.string),
    features.MOVIE_ID: tf.io.FixedLenFeature([1], tf.string),
    features.RATING: tf.io.FixedLenFeature([1], tf.float32),
    features.TIMESTAMP: tf.io.FixedLenFeature([1], tf.int64),
    features.TITLE: tf.io.VarLenFeature(tf.string),
    features.GENRES: tf.io.VarLenFeature(tf.string),
}


def row(user, movie, rating, title=None):
    return {features.USER_ID: [user], features.MOVIE_ID: [movie], features.RATING: [rating],
            features.TIMESTAMP: [0], features.TITLE: [title] if title else [],
            features.GENRES: [b"Drama", b"War"] if title else []}


def test_vocabularies_and_oov(tmp_path):
    rows = [row(b"u1", b"m1", 4.0, b"One"), row(b"u2", b"m1", 3.0, b"One"), row(b"u2", b"m2", 5.0),
            row(b"u2", b"m1", 1.0, b"One")]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=tmp_path)):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "transform"))

    user_xf, movie_xf = features.transformed_name(features.USER_ID), features.transformed_name(features.MOVIE_ID)
    # Most frequent first: u2 (3 ratings) -> 0, u1 -> 1; m1 (3) -> 0, m2 -> 1.
    assert [int(r[user_xf][0]) for r in transformed] == [1, 0, 0, 0]
    assert [int(r[movie_xf][0]) for r in transformed] == [0, 0, 1, 0]
    assert [float(r[features.transformed_name(features.RATING)][0]) for r in transformed] == [4.0, 3.0, 5.0, 1.0]
    # Titles pass through for the catalogue; a movie without a side-table row gets "".
    assert [r[features.transformed_name(features.TITLE)][0] for r in transformed] == [b"One", b"One", b"", b"One"]
    assert [r[features.transformed_name(features.GENRES)][0] for r in transformed] == [
        b"Drama|War", b"Drama|War", b"", b"Drama|War"]
    # Slices: u1 has 1 training rating, u2 has 3; m1 has 3, m2 has 1 (bounds 0, 20, ...).
    assert {r[features.USER_ACTIVITY][0] for r in transformed} == {b"1-20"}

    output = tft.TFTransformOutput(str(tmp_path / "transform"))
    assert output.vocabulary_by_name(features.vocabulary_name(features.USER_ID)) == [b"u2", b"u1"]
    assert output.vocabulary_size_by_name(features.vocabulary_name(features.MOVIE_ID)) == 2

    # At serving time only the IDs arrive; an unseen ID maps to the OOV bucket == vocabulary size.
    layer = output.transform_features_layer()
    served = layer({features.USER_ID: tf.constant([[b"u1"], [b"stranger"]]),
                    features.MOVIE_ID: tf.constant([[b"m2"], [b"m9"]])})
    assert served[user_xf].numpy().ravel().tolist() == [1, 2]
    assert served[movie_xf].numpy().ravel().tolist() == [1, 2]
    # A user unseen in training is in the "0" activity bucket.
    assert served[features.USER_ACTIVITY].numpy().ravel().tolist() == [b"1-20", b"0"]
