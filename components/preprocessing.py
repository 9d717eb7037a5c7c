"""tf.Transform preprocessing: ID vocabularies, pass-through catalogue fields, activity slices.

Each ID becomes an index into a vocabulary written as a named file (`user_id_vocab`,
`movie_id_vocab`) ordered by frequency; IDs not seen in training map to the one OOV bucket,
index == vocabulary size, which the model treats as "unknown". Title and genres pass through
(empty when unknown) so the Trainer can put them into the exported model's catalogue; so do
year, age, gender and occupation, which models with `side_features` embed per ID (see side_features.py).

`user_activity` and `movie_popularity` name the bucket of how many training ratings the user
(movie) has, e.g. "21-50" or "0" for IDs new since training: the Evaluator slices RMSE by them,
so a regression on cold users or long-tail movies is visible and can block a push.
"""
from typing import Dict, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from components import features

OOV_BUCKETS = 1
# Upper bounds of the activity buckets (ratings in training); overridable via custom_config.
DEFAULT_USER_ACTIVITY_BOUNDS = (0, 20, 50, 150)
DEFAULT_MOVIE_POPULARITY_BOUNDS = (0, 10, 50, 200)


def bucket_labels(bounds: Sequence[int]):
    """["0", "1-20", "21-50", ..., ">150"] for bounds (0, 20, 50, 150)."""
    labels, low = [], 0
    for high in bounds:
        labels.append(str(high) if high == low else f"{low}-{high}")
        low = high + 1
    return labels + [f">{bounds[-1]}"]


def count_bucket(ids: tf.Tensor, bounds: Sequence[int], counts_filename: str) -> tf.Tensor:
    """[batch, 1] bucket label of how often each ID occurs in the analyzed (training) data."""
    # A vocabulary with frequencies: lines "<count> <id>", looked up as a table (IDs have no spaces).
    counts_file = tft.vocabulary(ids, vocab_filename=counts_filename, store_frequency=True)
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(counts_file, key_dtype=tf.string, key_index=1,
                                      value_dtype=tf.int64, value_index=0, delimiter=" "),
        default_value=0)
    count = table.lookup(tf.reshape(ids, [-1]))
    index = tf.searchsorted(tf.constant(bounds, tf.int64), count, side="left")
    return tf.reshape(tf.gather(tf.constant(bucket_labels(bounds)), index), [-1, 1])


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Optional[dict] = None):
    """Vocabulary indices for the IDs, the label, catalogue fields and slice buckets."""
    config = custom_config or {}
    outputs = {
        features.transformed_name(key): tft.compute_and_apply_vocabulary(
            inputs[key], num_oov_buckets=OOV_BUCKETS, vocab_filename=features.vocabulary_name(key))
        for key in features.ID_FEATURES
    }
    outputs[features.transformed_name(features.LABEL_KEY)] = inputs[features.LABEL_KEY]
    outputs[features.transformed_name(features.TITLE)] = tft.sparse_tensor_to_dense_with_shape(
        inputs[features.TITLE], [None, 1], default_value="")
    for key in (features.YEAR, features.AGE):
        outputs[features.transformed_name(key)] = tft.sparse_tensor_to_dense_with_shape(
            inputs[key], [None, 1], default_value=features.UNKNOWN_INT)
    for key in (features.GENDER, features.OCCUPATION):
        outputs[features.transformed_name(key)] = tft.sparse_tensor_to_dense_with_shape(
            inputs[key], [None, 1], default_value=features.UNKNOWN_TEXT)
    genres = tf.RaggedTensor.from_sparse(inputs[features.GENRES])
    outputs[features.transformed_name(features.GENRES)] = tf.reshape(
        tf.strings.reduce_join(genres, axis=1, separator=features.GENRE_SEPARATOR), [-1, 1])
    outputs[features.USER_ACTIVITY] = count_bucket(
        inputs[features.USER_ID], config.get("user_activity_bounds", DEFAULT_USER_ACTIVITY_BOUNDS),
        "user_id_counts")
    outputs[features.MOVIE_POPULARITY] = count_bucket(
        inputs[features.MOVIE_ID], config.get("movie_popularity_bounds", DEFAULT_MOVIE_POPULARITY_BOUNDS),
        "movie_id_counts")
    return outputs
