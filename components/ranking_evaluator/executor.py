"""RankingEvaluator executor: each model's `recommend` lists for the eval users, scored and gated.

Protocol (issue 15): every eval-split user is asked for the top K over the whole catalogue with
exclude_seen on (the model leaves out the user's training movies); relevant = the user's
eval-split movies, or only those rated 4-5 (`rated_4_plus`, reported, not gated). The candidate
and the last blessed model are scored on the same users and rows. The gate is on NDCG@K, the
`all` relevance: at least `ndcg_lower_bound`, and, when a blessed model exists, at most
`max_ndcg_decrease` below it. The output blessing (`ranking_blessing`) is blessed only when that gate and TFMA's RMSE
blessing both pass.
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from models import ranking
from movierec.data import features
from serving import contract

# Component spec keys.
EXAMPLES, MODEL, BASELINE_MODEL, RMSE_BLESSING = "examples", "model", "baseline_model", "rmse_blessing"
# Not "blessing": TFMA's Evaluator outputs its ModelBlessing under that key, and TFX's Airflow launcher
# names outputs "<key>:<run id>", which ML Metadata keeps unique per type (tests/unit/pipeline/test_output_names.py).
RANKING, BLESSING = "ranking", "ranking_blessing"
K, NDCG_LOWER_BOUND, MAX_NDCG_DECREASE = "k", "ndcg_lower_bound", "max_ndcg_decrease"
USER_ACTIVITY_BOUNDS = "user_activity_bounds"

METRICS_FILE = "ranking_metrics.json"
CANDIDATE, BASELINE = "candidate", "baseline"
# Users per recommend call: [batch, catalogue] scores stay small at 116k movies (~30 MB).
RECOMMEND_BATCH = 64
# Blessing custom properties TFX's resolvers and Pusher read (tfx/components/evaluator/constants.py).
BLESSED_KEY, CURRENT_MODEL_ID, CURRENT_MODEL_URI = "blessed", "current_model_id", "current_model_uri"
BASELINE_MODEL_ID, BASELINE_MODEL_URI = "baseline_model_id", "baseline_model_uri"
BLESSED_FILE, NOT_BLESSED_FILE = "BLESSED", "NOT_BLESSED"
RANKING_NOTES = "ranking_notes"
# Change thresholds compare with a tolerance that only absorbs float rounding (as for RMSE).
TOLERANCE = 1e-10


def read_split(examples: types.Artifact, split: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user IDs, movie IDs, ratings) of one split of the Examples artifact, as numpy arrays."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    files = sorted(fileio.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{pattern}: no examples in split '{split}'")
    spec = {features.USER_ID: tf.io.FixedLenFeature([], tf.string),
            features.MOVIE_ID: tf.io.FixedLenFeature([], tf.string),
            features.RATING: tf.io.FixedLenFeature([], tf.float32)}
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65536).map(
        lambda batch: tf.io.parse_example(batch, spec))
    columns = {key: [] for key in spec}
    for batch in dataset:
        for key in spec:
            columns[key].append(batch[key].numpy())
    return tuple(np.concatenate(columns[key]) for key in spec)


def read_eval_set(examples: types.Artifact, activity_bounds: Sequence[int]) -> ranking.EvalSet:
    """The EvalSet of an Examples artifact's train and eval splits (what every model is scored on)."""
    train_users, train_movies, _ = read_split(examples, "train")
    return ranking.EvalSet.from_rows(train_users, train_movies, *read_split(examples, "eval"),
                                     activity_bounds=activity_bounds)


def recommend_request(user_ids: np.ndarray, k: int) -> Dict[str, tf.Tensor]:
    """The recommend signature's inputs for a batch of users with their training movies excluded.

    The one place that builds the request, with serving/contract.py's builder (one k, one
    exclude_seen and one exclusion list per row).
    """
    inputs = contract.recommend_inputs(list(user_ids), [k] * len(user_ids), [True] * len(user_ids),
                                       [[]] * len(user_ids))
    return {name: tf.constant(value) for name, value in inputs.items()}


def recommend_lists(model_dir: str, user_ids: np.ndarray, k: int) -> Dict[bytes, np.ndarray]:
    """{user ID: top-k movie IDs} from the SavedModel's recommend signature."""
    recommend = tf.saved_model.load(model_dir).signatures[contract.RECOMMEND]
    lists = {}
    for start in range(0, len(user_ids), RECOMMEND_BATCH):
        batch = user_ids[start:start + RECOMMEND_BATCH]
        movies = contract.top_columns(recommend(**recommend_request(batch, k))[contract.MOVIE_ID].numpy(), k)
        lists.update(zip(batch.tolist(), movies))
    return lists


def evaluate_models(eval_set: ranking.EvalSet, model_dirs: Dict[str, str], k: int) -> Dict[str, Any]:
    """{relevance: {model: {slice: metrics dict}}} for each model's recommend lists."""
    result = {which: {} for which in (ranking.RELEVANT_ALL, ranking.RELEVANT_LIKED)}
    for name, model_dir in model_dirs.items():
        lists = recommend_lists(model_dir, eval_set.user_ids, k)
        for which in result:
            if eval_set.relevant(which).nnz:
                result[which][name] = {label: metrics.as_dict()
                                       for label, metrics in eval_set.score(lists, which).items()}
    return result


def gate(candidate_ndcg: float, baseline_ndcg: Optional[float], lower_bound: float,
         max_decrease: float, k: int) -> Tuple[bool, List[str]]:
    """(passed, why in words) of the NDCG@k gate."""
    name = f"NDCG@{k}"
    notes, passed = [], True
    if candidate_ndcg + TOLERANCE < lower_bound:
        passed = False
        notes.append(f"{name} {candidate_ndcg:.4f} is below the bound {lower_bound:g}")
    else:
        notes.append(f"{name} {candidate_ndcg:.4f} >= bound {lower_bound:g}")
    if baseline_ndcg is not None:
        change = candidate_ndcg - baseline_ndcg
        if change + max_decrease + TOLERANCE < 0:
            passed = False
            notes.append(f"{name} is {change:+.4f} vs the last blessed model's {baseline_ndcg:.4f} "
                         f"(more than the allowed decrease {max_decrease:g})")
        else:
            notes.append(f"{name} not worse than the last blessed model's {baseline_ndcg:.4f} "
                         f"(allowed decrease {max_decrease:g})")
    return passed, notes


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES])
        model = artifact_utils.get_single_instance(input_dict[MODEL])
        baseline = (input_dict.get(BASELINE_MODEL) or [None])[0]
        rmse_blessing = artifact_utils.get_single_instance(input_dict[RMSE_BLESSING])
        k = int(exec_properties[K])
        bounds = json.loads(exec_properties[USER_ACTIVITY_BOUNDS])

        eval_set = read_eval_set(examples, bounds)
        model_dirs = {CANDIDATE: path_utils.serving_model_path(model.uri)}
        if baseline is not None:
            model_dirs[BASELINE] = path_utils.serving_model_path(baseline.uri)
        metrics = evaluate_models(eval_set, model_dirs, k)

        gated = metrics[ranking.RELEVANT_ALL]
        baseline_ndcg = gated[BASELINE][ranking.OVERALL]["ndcg"] if BASELINE in gated else None
        passed, notes = gate(gated[CANDIDATE][ranking.OVERALL]["ndcg"], baseline_ndcg,
                             float(exec_properties[NDCG_LOWER_BOUND]),
                             float(exec_properties[MAX_NDCG_DECREASE]), k)
        rmse_blessed = rmse_blessing.get_int_custom_property(BLESSED_KEY) == 1
        blessed = passed and rmse_blessed

        ranking_artifact = artifact_utils.get_single_instance(output_dict[RANKING])
        io_utils.write_string_file(os.path.join(ranking_artifact.uri, METRICS_FILE), json.dumps({
            "k": k, "metrics": metrics,
            "gate": {"passed": passed, "notes": notes, "rmse_blessed": rmse_blessed, "blessed": blessed},
        }, indent=1))

        blessing = artifact_utils.get_single_instance(output_dict[BLESSING])
        blessing.set_int_custom_property(CURRENT_MODEL_ID, model.id)
        blessing.set_string_custom_property(CURRENT_MODEL_URI, model.uri)
        if baseline is not None:
            blessing.set_int_custom_property(BASELINE_MODEL_ID, baseline.id)
            blessing.set_string_custom_property(BASELINE_MODEL_URI, baseline.uri)
        blessing.set_string_custom_property(RANKING_NOTES, "; ".join(notes))
        blessing.set_int_custom_property(BLESSED_KEY, int(blessed))
        io_utils.write_string_file(os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
        logging.info("Ranking: %s; RMSE blessing %s; blessed %s", "; ".join(notes), rmse_blessed, blessed)


def load_metrics(ranking_uri: str) -> Dict[str, Any]:
    """The ranking_metrics.json a RankingEvaluator wrote."""
    with fileio.open(os.path.join(ranking_uri, METRICS_FILE)) as f:
        return json.load(f)
