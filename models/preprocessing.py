"""tf.Transform preprocessing: ID vocabularies, pass-through catalogue fields, activity slices.

Each ID becomes an index into a vocabulary written as a named file (`user_id_vocab`,
`movie_id_vocab`) ordered by frequency, one "<count> <id>" line per ID (models/features.py vocabulary_id
reads the ID back); IDs not seen in training map to the one OOV bucket, index == vocabulary
size, which the model treats as "unknown". Title and genres pass through
(empty when unknown) so the Trainer can put them into the exported model's catalogue; so do
year, age, gender and occupation, which models with `side_features` embed per ID (see side_features.py).

`user_activity` and `movie_popularity` name the bucket of how many training ratings the user
(movie) has, e.g. "21-50" or "0" for IDs new since training: the Evaluator slices RMSE by them,
so a regression on cold users or long-tail movies is visible and can block a push.
"""
from typing import Dict, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from models.features import (DEFAULT_MOVIE_POPULARITY_BOUNDS, DEFAULT_USER_ACTIVITY_BOUNDS, MOVIE_POPULARITY,
                             SPACE_MARKER, USER_ACTIVITY, bucket_labels, transformed_name, vocabulary_name)
from ratings import features

OOV_BUCKETS = 1
def _text_table(vocab_file: tf.Tensor, value_index: int, num_oov_buckets: int = 0):
    """A table over a frequency vocabulary's lines "<count> <token>": token -> line number
    (tf.lookup.TextFileIndex.LINE_NUMBER) or -> count (0)."""
    initializer = tf.lookup.TextFileInitializer(vocab_file, key_dtype=tf.string, key_index=1,
                                                value_dtype=tf.int64, value_index=value_index, delimiter=" ")
    if num_oov_buckets:
        return tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=num_oov_buckets)
    return tf.lookup.StaticHashTable(initializer, default_value=0)


def _index_lookup(tokens: tf.Tensor, vocab_file: tf.Tensor):
    """tft.apply_vocabulary's lookup_fn for a frequency vocabulary: (indices, table size)."""
    table = _text_table(vocab_file, tf.lookup.TextFileIndex.LINE_NUMBER, OOV_BUCKETS)
    return table.lookup(tokens), table.size()


def index_and_count(ids: tf.Tensor, vocab_filename: str):
    """([batch, 1] vocabulary index, [batch] training count) of each ID, from one analyzer.

    A single frequency vocabulary serves both, so Transform counts each ID column once instead
    of twice (a vocabulary for the index plus another for the counts).
    """
    tokens = tf.strings.regex_replace(tf.reshape(ids, [-1, 1]), " ", SPACE_MARKER)
    vocab_file = tft.vocabulary(tokens, vocab_filename=vocab_filename, store_frequency=True)
    index = tft.apply_vocabulary(tokens, vocab_file, lookup_fn=_index_lookup)
    count = _text_table(vocab_file, value_index=0).lookup(tf.reshape(tokens, [-1]))
    return index, count


def count_bucket(count: tf.Tensor, bounds: Sequence[int]) -> tf.Tensor:
    """[batch, 1] bucket label of each training count."""
    index = tf.searchsorted(tf.constant(bounds, tf.int64), count, side="left")
    return tf.reshape(tf.gather(tf.constant(bucket_labels(bounds)), index), [-1, 1])


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Optional[dict] = None):
    """Vocabulary indices for the IDs, the label, catalogue fields and slice buckets."""
    config = custom_config or {}
    outputs, counts = {}, {}
    for key in features.ID_FEATURES:
        outputs[transformed_name(key)], counts[key] = index_and_count(
            inputs[key], vocabulary_name(key))
    outputs[transformed_name(features.LABEL_KEY)] = inputs[features.LABEL_KEY]
    outputs[transformed_name(features.TITLE)] = tft.sparse_tensor_to_dense_with_shape(
        inputs[features.TITLE], [None, 1], default_value="")
    for key in (features.YEAR, features.AGE):
        outputs[transformed_name(key)] = tft.sparse_tensor_to_dense_with_shape(
            inputs[key], [None, 1], default_value=features.UNKNOWN_INT)
    for key in (features.GENDER, features.OCCUPATION):
        outputs[transformed_name(key)] = tft.sparse_tensor_to_dense_with_shape(
            inputs[key], [None, 1], default_value=features.UNKNOWN_TEXT)
    genres = tf.RaggedTensor.from_sparse(inputs[features.GENRES])
    outputs[transformed_name(features.GENRES)] = tf.reshape(
        tf.strings.reduce_join(genres, axis=1, separator=features.GENRE_SEPARATOR), [-1, 1])
    outputs[USER_ACTIVITY] = count_bucket(
        counts[features.USER_ID], config.get("user_activity_bounds", DEFAULT_USER_ACTIVITY_BOUNDS))
    outputs[MOVIE_POPULARITY] = count_bucket(
        counts[features.MOVIE_ID], config.get("movie_popularity_bounds", DEFAULT_MOVIE_POPULARITY_BOUNDS))
    return outputs
