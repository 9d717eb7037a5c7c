"""ServableExport executor: the judged model, rebuilt with every accepted rating (component.py).

Reads the user and movie IDs of every split of every accepted Examples artifact in batches,
keeping only integer codes (8 bytes a rating; 10M ratings are never held as Python strings),
turns them into seen tables (models/seen.py) and exports the servable (models/servable.py).
It does not read the blessing: its output depends only on the model, the accepted examples and
the Transform graph, so a rerun on the same ones (e.g. one whose Evaluator ran again against a
new baseline) is cached and the Pusher finds that servable already served. The InfraValidator
and the Pusher read the blessing and do nothing with a model that was not blessed.

The servable's custom properties say which ratings each model used, for the run summary.
"""
import json
from typing import Any, Dict, List, Tuple

import numpy as np
import pandas as pd
import tensorflow_transform as tft
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import rows
from models import catalog, seen as seen_lib, servable
from models.artifacts import CATALOG_FILE
from models.hyperparameters import Hyperparameters
from ratings import paths
from ratings import features

# Component spec keys.
MODEL, TRANSFORM_GRAPH, EXAMPLES, SERVABLE = "model", "transform_graph", "examples", "servable"
HYPERPARAMETERS = "hyperparameters"
# Custom properties of the servable (read by pipeline/run_summary.py).
JUDGED_RATINGS = "judged_ratings"  # the judged model's training ratings
ACCEPTED_RATINGS = "accepted_ratings"  # ratings read: every split of every accepted artifact
ACCEPTED_FROM = "accepted_from"  # "span 0 (train, eval); span 1 (...)"
SEEN_PAIRS, SEEN_USERS, SEEN_BYTES = "seen_pairs", "seen_users", "seen_bytes"


def _codes(values: np.ndarray, index: Dict[bytes, int], grow: bool) -> np.ndarray:
    """Integer codes of a batch of IDs through `index` (new IDs added when `grow`, else -1)."""
    codes, uniques = pd.factorize(values)
    if grow:
        mapped = [index.setdefault(u, len(index)) for u in uniques]
    else:
        mapped = [index.get(u, -1) for u in uniques]
    return np.asarray(mapped, np.int64)[codes]


def accepted_ratings(examples: List[types.Artifact], movie_ids: np.ndarray
                     ) -> Tuple[seen_lib.Seen, servable.Ratings, int, List[str]]:
    """(seen tables of every split of every artifact, over the catalogue `movie_ids`; those
    ratings of catalogue movies as (seen tables' user row, movie index, timestamp) for the
    retrieval head; the number of ratings read; "span N (splits)" per artifact)."""
    movie_index = {movie: i for i, movie in enumerate(movie_ids.tolist())}
    user_index: Dict[bytes, int] = {}
    users, movies, timestamps, sources = [], [], [], []
    for artifact in examples:
        splits = artifact_utils.decode_split_names(artifact.split_names)
        sources.append(f"span {rows.span(artifact)} ({', '.join(splits)})")
        for split in splits:
            keys = (features.USER_ID, features.MOVIE_ID, features.TIMESTAMP)
            for batch in rows.split_batches(artifact, split, keys):
                users.append(_codes(batch[features.USER_ID].numpy(), user_index, grow=True).astype(np.int32))
                movies.append(_codes(batch[features.MOVIE_ID].numpy(), movie_index, grow=False).astype(np.int32))
                timestamps.append(batch[features.TIMESTAMP].numpy())
    users = np.concatenate(users) if users else np.zeros(0, np.int32)
    movies = np.concatenate(movies) if movies else np.zeros(0, np.int32)
    timestamps = np.concatenate(timestamps) if timestamps else np.zeros(0, np.int64)
    user_ids = np.empty(len(user_index), dtype=object)
    user_ids[list(user_index.values())] = list(user_index)
    known = movies >= 0  # the seen tables' user rows are these user codes (seen.from_pairs)
    return (seen_lib.from_pairs(users, user_ids, movies),
            servable.Ratings(users[known], movies[known], timestamps[known]), len(users), sources)


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        model = artifact_utils.get_single_instance(input_dict[MODEL])
        output = artifact_utils.get_single_instance(output_dict[SERVABLE])
        hparams = Hyperparameters.from_dict(json.loads(exec_properties[HYPERPARAMETERS]))
        catalog_file = paths.join(model.uri, CATALOG_FILE)
        movies_and_users, stats = catalog.load(catalog_file)
        seen, accepted, read, sources = accepted_ratings(input_dict[EXAMPLES], movies_and_users.movie_ids)
        transform_graph = artifact_utils.get_single_instance(input_dict[TRANSFORM_GRAPH])
        servable.export_servable(path_utils.serving_model_path(model.uri), catalog_file,
                                 tft.TFTransformOutput(transform_graph.uri), hparams, seen, accepted,
                                 path_utils.serving_model_dir(output.uri))
        output.set_int_custom_property(JUDGED_RATINGS, int(stats["count"]))
        output.set_int_custom_property(ACCEPTED_RATINGS, read)
        output.set_string_custom_property(ACCEPTED_FROM, "; ".join(sources))
        output.set_int_custom_property(SEEN_PAIRS, seen.num_pairs)
        output.set_int_custom_property(SEEN_USERS, seen.num_users)
        output.set_int_custom_property(SEEN_BYTES, seen.nbytes)
        logging.info("Servable: %d accepted ratings (%s); seen tables: %d pairs of %d users, %.1f MB",
                     read, "; ".join(sources), seen.num_pairs, seen.num_users, seen.nbytes / 1e6)
