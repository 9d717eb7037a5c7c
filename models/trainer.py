"""Trainer module: `run_fn` trains the rating model on Transform's features and exports it.

The export (see `export`) carries the Transform graph and a catalogue built from the training
data, so its signatures take raw IDs and answer ratings, recommendations and similar items.
"""
import json
import os
import time
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
# Not tfx.v1, whose extensions import the Google Cloud clients (the run summary imports this module).
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from models import catalog, embeddings, export
from models.rating import autorec, scoring, warm_start
from models.retrieval import history_head
from models.layers import side_features
from models.rating import model as model_lib
from models.artifacts import CATALOG_FILE, EXAMPLES_PER_SECOND, HISTORY_FILE, MAP_FILE
from models.features import MOVIE_XF, RATING_XF, USER_XF
from models.hyperparameters import HYPERPARAMETERS, Hyperparameters
from ratings import paths
from ratings import features



def transformed_dataset(file_pattern, data_accessor: DataAccessor,
                        tf_transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    """Batches of Transform's features of raw examples, and their raw timestamp, once, in file order.

    Transform does not materialize its output (see pipeline.py): its graph runs here, inside
    tf.data, which reads and parses in C++ rather than element by element in Beam. The timestamp
    tells the catalogue which of a re-rated pair's ratings is the newest (catalog.build).
    """
    tft_layer = tf_transform_output.transform_features_layer()
    raw = data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1, shuffle=False),
        tf_transform_output.raw_metadata.schema)
    return raw.map(lambda batch: {**tft_layer(batch), features.TIMESTAMP: batch[features.TIMESTAMP]},
                   num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(file_pattern, data_accessor: DataAccessor,
                       tf_transform_output: tft.TFTransformOutput, batch_size: int) -> tf.data.Dataset:
    """Batches of (model inputs, rating) for validation during fit."""
    inputs = [USER_XF, MOVIE_XF]
    return transformed_dataset(file_pattern, data_accessor, tf_transform_output, batch_size).map(
        lambda batch: ({key: batch[key] for key in inputs}, tf.reshape(batch[RATING_XF], [-1])))


def _log_epoch(epochs: int):
    def log(epoch, logs):
        shown = ", ".join(f"{name} {value:,.0f}" if name == EXAMPLES_PER_SECOND else f"{name} {value:.4f}"
                          for name, value in sorted(logs.items()))
        logging.info("Epoch %d/%d: %s", epoch + 1, epochs, shown)
    return log


class Throughput(tf.keras.callbacks.Callback):
    """Adds each epoch's training examples per second (fitting only, not validation) to its logs,
    so the history, TensorBoard and the epoch log line carry it; listed before the loggers."""

    def __init__(self, examples: int):
        super().__init__()
        self.examples = examples

    def on_epoch_begin(self, epoch, logs=None):
        self._started, self._fit_seconds = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        self._fit_seconds = time.perf_counter() - self._started

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._fit_seconds or time.perf_counter() - self._started
        logs[EXAMPLES_PER_SECOND] = self.examples / seconds


def retrieval_head(users: np.ndarray, movies: np.ndarray, num_movies: int, hparams: Hyperparameters,
                   dated: Tuple[np.ndarray, np.ndarray, np.ndarray]) -> Optional[history_head.Tables]:
    """The closed-form retrieval head (seconds, even at 100k+ movies) of (user, movie index)
    pairs, its recent popularity counted on the same ratings with their dates, `dated` =
    (users, movies, timestamps); or None with `retrieval: rating`. The Trainer fits it on its
    training ratings, the servable that is pushed on every accepted rating (models/servable.py):
    one function of both."""
    if hparams.retrieval != "history":
        return None
    started = time.perf_counter()
    recent = (history_head.recent_popularity(*dated, num_movies, hparams.retrieval_recency_days)
              if hparams.retrieval_recency_weight else None)
    tables = history_head.fit(users, movies, num_movies, hparams.retrieval_l2, hparams.retrieval_dim,
                              hparams.retrieval_popularity_l2, hparams.retrieval_popularity_weight,
                              recent, hparams.retrieval_recency_weight, hparams.retrieval_popularity_discount)
    logging.info("Retrieval head (rank %d EASE, L2 %g + %g x count, popularity weight %g, recency weight %g over "
                 "%g days, popularity discount %g) fitted on %d ratings in %.1f s", hparams.retrieval_dim,
                 hparams.retrieval_l2, hparams.retrieval_popularity_l2, hparams.retrieval_popularity_weight,
                 hparams.retrieval_recency_weight, hparams.retrieval_recency_days,
                 hparams.retrieval_popularity_discount, len(movies),
                 time.perf_counter() - started)
    return tables


def rating_model(movies_and_users: catalog.Catalog, hparams: Hyperparameters, global_mean: float,
                 rating_range: Tuple[float, float], training_steps: int = 0) -> tf.keras.Model:
    """The rating model (before any AutoRec blend) over a catalogue, untrained: what run_fn fits
    (`training_steps` batches in all) and what models/servable.py restores the fitted weights into."""
    return model_lib.build_model(movies_and_users.num_users, movies_and_users.num_movies, global_mean, hparams,
                                 rating_range=rating_range, training_steps=training_steps,
                                 **(side_features.tables(movies_and_users) if hparams.side_features else {}))


def run_fn(fn_args: FnArgs) -> None:
    """Called by the TFX Trainer: trains, logs to TensorBoard, exports the serving model."""
    hparams = Hyperparameters.from_dict((fn_args.custom_config or {}).get(HYPERPARAMETERS, {}))
    tf.keras.utils.set_random_seed(hparams.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    # One pass over the training data first: the catalogue, and the exact rating mean and range.
    movies_and_users = catalog.build(
        tf_transform_output,
        transformed_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, catalog.SCAN_BATCH))
    ratings = movies_and_users.seen_ratings
    users, movies = movies_and_users.seen_users(), movies_and_users.seen_movies
    retrieval_tables = retrieval_head(users, movies, movies_and_users.num_movies, hparams,
                                      (users, movies, movies_and_users.seen_timestamps))
    evaluation = evaluation_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                                    hparams.batch_size)
    model = rating_model(movies_and_users, hparams, float(ratings.mean()), (float(ratings.min()), float(ratings.max())),
                         model_lib.training_steps(len(ratings), hparams))
    if fn_args.base_model:
        logging.info("Warm start: %s", warm_start.warm_start(model, fn_args.base_model, movies_and_users))
    # Training batches come from the catalogue's (user, movie, rating) arrays, ~20 bytes a rating
    # that the exported model carries anyway: ~5x the examples/s of re-reading the records each
    # epoch, and Keras reshuffles them fully every epoch.
    history = model.fit(
        movies_and_users.training_inputs(), ratings, batch_size=hparams.batch_size, shuffle=True,
        epochs=hparams.epochs, validation_data=evaluation, verbose=0,
        callbacks=[Throughput(len(ratings)),
                   tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
                   tf.keras.callbacks.LambdaCallback(on_epoch_end=_log_epoch(hparams.epochs))])
    if hparams.model == "mf_autorec":
        table = autorec.fit_table(movies_and_users.seen_users(), movies_and_users.seen_movies, ratings,
                                  movies_and_users.num_users, movies_and_users.num_movies, hparams)
        model = model_lib.with_autorec(model, table, hparams.blend_weight)
        blended = model.evaluate(evaluation, verbose=0, return_dict=True)
        logging.info("Epoch %d/%d: blended with AutoRec: val_rmse %.4f", hparams.epochs, hparams.epochs,
                     blended["rmse"])
    # The run summary reads the per-epoch losses from here, beside the TensorBoard logs.
    with tf.io.gfile.GFile(f"{fn_args.model_run_dir}/{HISTORY_FILE}", "w") as f:
        json.dump(history.history, f)
    export.save(model, tf_transform_output, movies_and_users, fn_args.serving_model_dir, retrieval_tables)
    # Beside Format-Serving: what the servable that is pushed is rebuilt from (models/servable.py).
    catalog.save(movies_and_users, paths.join(paths.parent(fn_args.serving_model_dir), CATALOG_FILE))
    vectors = scoring.movie_vectors(model).numpy()
    embeddings.write_projector(fn_args.model_run_dir, movies_and_users, vectors)
    embeddings.write_map(os.path.join(fn_args.model_run_dir, MAP_FILE), movies_and_users, vectors)
