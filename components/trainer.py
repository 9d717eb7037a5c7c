"""Trainer module: `run_fn` trains the rating model on Transform's output and exports it.

The exported SavedModel carries the Transform graph (`model.tft_layer`), so it takes raw IDs:
- `serving_default`: serialized tf.Example (`user_id`, `movie_id` bytes) in `examples` -> `rating`;
- `transform_features`: serialized tf.Example -> transformed features (used by TFMA).
"""
import json

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import features
from components.hyperparameters import Hyperparameters
from components.model import build_model

LABEL = features.transformed_name(features.LABEL_KEY)
# Batches scanned to start the global bias at the training mean; the bias keeps training after.
MEAN_ESTIMATE_BATCHES = 200
HISTORY_FILE = "history.json"


def make_dataset(file_pattern, data_accessor: tfx.components.DataAccessor,
                 tf_transform_output: tft.TFTransformOutput, batch_size: int,
                 shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of (transformed features, rating) read once through the transformed examples."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL, num_epochs=1,
                                       shuffle=shuffle, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema)
    return dataset.map(lambda feats, label: (feats, tf.reshape(label, [-1]))).prefetch(
        tf.data.AUTOTUNE)


def mean_label(dataset: tf.data.Dataset) -> float:
    total, count = 0.0, 0
    for _, label in dataset.take(MEAN_ESTIMATE_BATCHES):
        total += float(tf.reduce_sum(label))
        count += int(tf.size(label))
    return total / max(count, 1)


def _log_epoch(epochs: int):
    def log(epoch, logs):
        shown = ", ".join(f"{name} {value:.4f}" for name, value in sorted(logs.items()))
        logging.info("Epoch %d/%d: %s", epoch + 1, epochs, shown)
    return log


def serving_signatures(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput):
    """The exported signatures: tf.Example in, rating out; and Transform alone, for TFMA."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_feature_spec = tf_transform_output.raw_feature_spec()
    request_spec = {key: raw_feature_spec[key] for key in features.ID_FEATURES}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, request_spec)
        transformed = model.tft_layer(raw)
        inputs = {features.transformed_name(k): transformed[features.transformed_name(k)]
                  for k in features.ID_FEATURES}
        return {features.LABEL_KEY: model(inputs)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, raw_feature_spec)
        return model.tft_layer(raw)

    return {
        "serving_default": serve_tf_examples.get_concrete_function(),
        "transform_features": transform_features.get_concrete_function(),
    }


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Called by the TFX Trainer: trains, logs to TensorBoard, exports the serving model."""
    hparams = Hyperparameters.from_dict(fn_args.custom_config or {})
    tf.keras.utils.set_random_seed(hparams.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                         hparams.batch_size, shuffle=True, seed=hparams.seed)
    evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                              hparams.batch_size, shuffle=False, seed=hparams.seed)
    model = build_model(
        num_users=tf_transform_output.vocabulary_size_by_name(features.vocabulary_name(features.USER_ID)),
        num_movies=tf_transform_output.vocabulary_size_by_name(features.vocabulary_name(features.MOVIE_ID)),
        global_mean=mean_label(train),
        hparams=hparams)
    history = model.fit(
        train, epochs=hparams.epochs, validation_data=evaluation, verbose=0,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
                   tf.keras.callbacks.LambdaCallback(on_epoch_end=_log_epoch(hparams.epochs))])
    # The run summary reads the per-epoch losses from here, beside the TensorBoard logs.
    with tf.io.gfile.GFile(f"{fn_args.model_run_dir}/{HISTORY_FILE}", "w") as f:
        json.dump(history.history, f)
    tf.saved_model.save(model, fn_args.serving_model_dir,
                        signatures=serving_signatures(model, tf_transform_output))
