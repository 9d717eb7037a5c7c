"""Rating-model settings on a validation carve of a run's training rows.

    python -m benchmarks.rating_settings --run <pipeline root's parent> [--config configs/synthetic-scale.yaml]
        [--settings '[{"learning_rate_decay": "cosine"}, {"learning_rate": 0.003}]']

Loads the training rows of a finished run (its Transform graph and ExampleGen's train split, as the
Trainer reads them), holds out a random 2% of them (numpy default_rng(0)) and, for the config's
hyperparameters and each given variant of them, fits the rating model on the rest and prints the
validation RMSE after every epoch beside bias-only's (models/rating/baselines.py) on the same rows:
the number the baselines gate compares, chosen without the eval split. How configs/synthetic-scale.yaml's
learning_rate_decay was chosen (benchmarks/README.md).
"""
import argparse
import dataclasses
import json
import os
import pathlib
import time

import numpy as np

from pipeline import configs, metadata

HOLD_OUT = 50  # one training row in 50 is held out


def training_catalog(config: configs.PipelineConfig):
    """The Catalog (models/catalog.py) of a finished run's training rows, as its Trainer built it."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow_transform as tft
    from tfx import v1 as tfx
    from tfx.components.util import examples_utils, tfxio_utils
    from tfx.proto import example_gen_pb2

    from models import catalog, trainer

    store = metadata.connect(config)
    tft_output = tft.TFTransformOutput(store.get_artifacts_by_type("TransformGraph")[-1].uri)
    examples = tfx.types.standard_artifacts.Examples()
    examples.uri = [a.uri for a in store.get_artifacts_by_type("Examples") if "/RatingsExampleGen/" in a.uri][-1]
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    accessor = tfx.components.DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
        record_batch_factory=None, data_view_decode_fn=None)
    return catalog.build(tft_output, trainer.transformed_dataset(
        [f"{examples.uri}/Split-train/*"], accessor, tft_output, catalog.SCAN_BATCH))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=pathlib.Path, required=True,
                        help="a run's folder holding pipeline/ (and serving/), e.g. runs/benchmark-scale/run-1m")
    parser.add_argument("--config", type=pathlib.Path, default=pathlib.Path("configs/synthetic-scale.yaml"))
    parser.add_argument("--settings", default="[{}]", help="JSON list of hyperparameter overrides")
    args = parser.parse_args()
    config = configs.load(args.config).replace(pipeline_root=str(args.run / "pipeline"),
                                               serving_dir=str(args.run / "serving")).absolute()
    import tensorflow as tf
    from models import trainer
    from models.rating import baselines, model as model_lib

    rows = training_catalog(config)
    inputs, ratings = rows.training_inputs(), rows.seen_ratings
    held = np.zeros(len(ratings), bool)
    held[np.random.default_rng(0).permutation(len(ratings))[:len(ratings) // HOLD_OUT]] = True
    fit_inputs = {key: value[~held] for key, value in inputs.items()}
    held_inputs = {key: value[held] for key, value in inputs.items()}
    user, movie = rows.seen_users(), rows.seen_movies
    bias_only = baselines.fit_bias_only(user[~held], movie[~held], ratings[~held])
    print(f"{(~held).sum():,} fitted, {held.sum():,} held out; bias-only RMSE "
          f"{baselines.rmse(bias_only.predict(user[held], movie[held]), ratings[held]):.4f}", flush=True)
    for overrides in json.loads(args.settings):
        hparams = dataclasses.replace(config.hyperparameters, **overrides)
        tf.keras.utils.set_random_seed(hparams.seed)
        model = trainer.rating_model(rows, hparams, float(ratings[~held].mean()),
                                     (float(ratings.min()), float(ratings.max())),
                                     model_lib.training_steps(int((~held).sum()), hparams))
        started, curve = time.perf_counter(), []
        for _ in range(hparams.epochs):  # one fit, its epochs one call at a time (the schedule counts steps)
            model.fit(fit_inputs, ratings[~held], batch_size=hparams.batch_size, epochs=1, shuffle=True, verbose=0)
            predicted = np.ravel(model.predict(held_inputs, batch_size=65536, verbose=0))
            curve.append(f"{baselines.rmse(predicted, ratings[held]):.4f}")
        print(f"{json.dumps(overrides)}: held-out RMSE by epoch {' '.join(curve)} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
