"""Running preprocessing_fn through tf.Transform on in-memory rows, as TFX's Transform would."""
import pathlib
import tempfile

import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from ratings import features
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
