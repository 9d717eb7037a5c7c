"""The servable that is pushed: the judged model's rating weights, and `recommend`'s tables over
every rating the pipeline accepted.

The model the gates judge (the Trainer's) holds out the eval split and knows only the spans of
its rolling window: right for judging it, wrong for the people it serves, who would be offered
films they rated (issue 21: 37.6% of MovieLens-100K's recommended movies). So once the blessing
is decided, components/servable_export rebuilds that model for serving, by this rule (README,
"What is judged and what is pushed"):

- the rating model, its vocabularies, catalogue, titles and movie/user vectors are the judged
  model's, weight for weight (restored from its SavedModel's checkpoint into the same Keras model
  the Trainer built, trainer.rating_model); `predict_rating`, `similar_*` answer exactly as judged;
- the seen tables (seen.py) hold every accepted rating of a catalogue movie: all splits, every
  validated span, users the rating model does not know included;
- the retrieval head is refitted on those same ratings (their recent popularity counted with
  their dates), with the same hyperparameters and the same function as the Trainer's
  (trainer.retrieval_head): a closed form, seconds.

Then it is exported by the same code as the judged model (export.save).
"""
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models import catalog, export, trainer
from models.retrieval import history_head
from models.rating import model as model_lib
from models.hyperparameters import Hyperparameters
from models.seen import Seen
from ratings import paths


def restore_rating_model(model_dir: str, catalog_file: str,
                         hparams: Hyperparameters) -> Tuple[tf.keras.Model, catalog.Catalog, Dict[str, float]]:
    """(the judged Keras rating model with its trained weights, its catalogue without ratings,
    catalog.RATING_STATS of its training ratings), from the Trainer's SavedModel and catalogue."""
    movies_and_users, stats = catalog.load(catalog_file)
    model = trainer.rating_model(movies_and_users, hparams, stats["mean"], (stats["min"], stats["max"]))
    if hparams.model == "mf_autorec":  # the table's values come from the checkpoint
        table = np.zeros((movies_and_users.num_movies, movies_and_users.num_users), np.float32)
        model = model_lib.with_autorec(model, table, hparams.blend_weight)
    # The SavedModel's variables are an object-based checkpoint whose root is the exported
    # module: its `model` attribute is this Keras model, matched layer by layer.
    status = tf.train.Checkpoint(model=model).read(paths.join(model_dir, "variables", "variables"))
    status.expect_partial()  # the module's other objects (tables, catalogue vectors) are rebuilt
    status.assert_existing_objects_matched()
    return model, movies_and_users, stats


class Ratings(NamedTuple):
    """Ratings of catalogue movies, aligned: the seen tables' user row, movie index, Unix seconds."""
    users: np.ndarray
    movies: np.ndarray
    timestamps: np.ndarray


def export_servable(model_dir: str, catalog_file: str, tf_transform_output: tft.TFTransformOutput,
                    hparams: Hyperparameters, seen: Seen, accepted: Ratings,
                    export_dir: str) -> Optional[history_head.Tables]:
    """Writes the servable to `export_dir` by the module docstring's rule; the refitted head's
    tables (None with `retrieval: rating`). `accepted`: the ratings `seen` was made of, with their dates."""
    model, movies_and_users, _ = restore_rating_model(model_dir, catalog_file, hparams)
    tables = trainer.retrieval_head(seen.user_rows(), seen.movies, movies_and_users.num_movies, hparams, accepted)
    export.save(model, tf_transform_output, movies_and_users, export_dir, tables, seen)
    return tables
