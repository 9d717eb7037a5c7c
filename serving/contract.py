"""What a pushed movierec model promises its clients: the one place for names and layout.

The export (models/export.py) builds signatures with these names, the Pusher lays out versions
this way, and everything under serving/ (client, server, load generator) reads only this module
to learn them. It imports TensorFlow's protos but never TFX or tf.Transform, so a gRPC client does
not load the pipeline stack.
"""
import os
from typing import List

import tensorflow as tf

from movierec.data import features

# Signatures.
SERVING_DEFAULT = "serving_default"
REGRESS = "regress"
TRANSFORM_FEATURES = "transform_features"
PREDICT_RATING = "predict_rating"
RECOMMEND = "recommend"
SIMILAR_MOVIES = "similar_movies"
SIMILAR_USERS = "similar_users"
# What clients call; transform_features exists for TFMA.
CLIENT_SIGNATURES = (SERVING_DEFAULT, REGRESS, PREDICT_RATING, RECOMMEND, SIMILAR_MOVIES, SIMILAR_USERS)

# TF Serving's method names (tensorflow/cc/saved_model/signature_constants.h): its Regress and
# Classify APIs only accept signatures whose method_name is theirs.
PREDICT_METHOD = "tensorflow/serving/predict"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_METHOD = "tensorflow/serving/classify"

# GetModelMetadata's one supported field (servables/tensorflow/get_model_metadata_impl.cc).
SIGNATURE_DEF = "signature_def"

# Inputs.
EXAMPLES = "examples"  # serving_default, transform_features: serialized tf.Example [B]
INPUTS = "inputs"  # regress: serialized tf.Example [B] (the Regress API's fixed name)
USER_ID, MOVIE_ID = features.USER_ID, features.MOVIE_ID
MOVIE = "movie"  # similar_movies: an ID or a title
K = "k"
EXCLUDE_SEEN = "exclude_seen"
EXCLUDE_MOVIE_IDS = "exclude_movie_ids"

# Outputs.
RATING = features.LABEL_KEY
OUTPUTS = "outputs"  # regress (the Regress API's fixed name)
TITLE = features.TITLE
SCORE = "score"
KNOWN_USER, KNOWN_MOVIE = "known_user", "known_movie"
QUERY_MOVIE_ID, QUERY_TITLE, FOUND = "query_movie_id", "query_title", "found"

# TF Serving replays this file of PredictionLog records before a version serves
# (servables/tensorflow/saved_model_warmup_util.cc).
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def rating_example(user_id: str, movie_id: str) -> bytes:
    """A serialized tf.Example with the two IDs: the input of `serving_default` and Regress."""
    feature = lambda value: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    return tf.train.Example(features=tf.train.Features(feature={
        USER_ID: feature(user_id), MOVIE_ID: feature(movie_id)})).SerializeToString()


def served_versions(base: str) -> List[int]:
    """Numeric version folders under a TF Serving model base path, oldest first.

    TF Serving counts only children whose names parse as integers as versions
    (sources/storage_path/file_system_storage_path_source.cc), so staging folders are invisible.
    """
    if not tf.io.gfile.isdir(base):
        return []
    return sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(base) if name.rstrip("/").isdigit())


def model_names(serving_dir: str) -> List[str]:
    """Models under a serving dir: the folders that hold numeric versions."""
    if not tf.io.gfile.isdir(serving_dir):
        return []
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(serving_dir)
                  if served_versions(os.path.join(serving_dir, name.rstrip("/"))))


# Each version carries its catalogue's IDs as these variables (models/export.py RecommenderModule),
# readable from the SavedModel's checkpoint without loading the graph.
USER_IDS_VARIABLE, MOVIE_IDS_VARIABLE = "user_ids", "movie_ids"


def catalogue_ids(version_dir: str):
    """(user IDs, movie IDs) the version knows, as str, in vocabulary order."""
    reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    read = lambda name: [value.decode("utf-8") for value in
                         reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")]
    return read(USER_IDS_VARIABLE), read(MOVIE_IDS_VARIABLE)
