"""RankingEvaluator executor: each model's `recommend` lists for the eval users, scored and judged.

Protocol (issue 15): every eval-split user is asked for the top K over the whole catalogue with
exclude_seen on (the model leaves out the user's training movies); relevant = the user's
eval-split movies, or only those rated 4-5 (`rated_4_plus`, reported, not gated). The candidate
and the last blessed model are scored on the same users and rows. The verdict is on NDCG@K, the
`all` relevance: at most `max_relative_ndcg_decrease` (relative) below the last blessed model's,
and at least `ndcg_lower_bound` when one is set (off by default: NDCG depends on the catalogue's
and the eval split's size).
"""
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components import rows, verdicts
from models.metrics import ranking
from serving import contract

GATE = "ranking"
# Component spec keys.
TRAINING_EXAMPLES, MODEL, BASELINE_MODEL = "training_examples", "model", "baseline_model"
RANKING = "ranking"
K, NDCG_LOWER_BOUND, MAX_RELATIVE_NDCG_DECREASE = "k", "ndcg_lower_bound", "max_relative_ndcg_decrease"
USER_ACTIVITY_BOUNDS = "user_activity_bounds"

METRICS_FILE = "ranking_metrics.json"
CANDIDATE, BASELINE = "candidate", "baseline"
# Users per recommend call: [batch, catalogue] scores stay small at 116k movies (~30 MB).
RECOMMEND_BATCH = 64


def recommend_request(user_ids: np.ndarray, k: int) -> Dict[str, tf.Tensor]:
    """The recommend signature's inputs for a batch of users with their training movies excluded.

    The one place that builds the request, with serving/contract.py's builder (one k, one
    exclude_seen and one exclusion list per row).
    """
    inputs = contract.recommend_inputs(list(user_ids), [k] * len(user_ids), [True] * len(user_ids),
                                       [[]] * len(user_ids))
    return {name: tf.constant(value) for name, value in inputs.items()}


def recommend_lists(model, user_ids: np.ndarray, k: int) -> Dict[bytes, np.ndarray]:
    """{user ID: top-k movie IDs} from a loaded SavedModel's recommend signature."""
    recommend = model.signatures[contract.RECOMMEND]
    lists = {}
    for start in range(0, len(user_ids), RECOMMEND_BATCH):
        batch = user_ids[start:start + RECOMMEND_BATCH]
        movies = contract.top_columns(recommend(**recommend_request(batch, k))[contract.MOVIE_ID].numpy(), k)
        lists.update(zip(batch.tolist(), movies))
    return lists


def score_lists(eval_set: ranking.EvalSet, lists: Dict[bytes, np.ndarray]) -> Dict[str, Any]:
    """{relevance: {slice: metrics dict}} of one model's lists ({} for a relevance no user has)."""
    return {which: {label: metrics.as_dict() for label, metrics in eval_set.score(lists, which).items()}
            for which in (ranking.RELEVANT_ALL, ranking.RELEVANT_LIKED) if eval_set.relevant(which).nnz}


def evaluate_models(eval_set: ranking.EvalSet, model_dirs: Dict[str, str], k: int) -> Dict[str, Any]:
    """{relevance: {model: {slice: metrics dict}}} for each model's recommend lists."""
    result = {which: {} for which in (ranking.RELEVANT_ALL, ranking.RELEVANT_LIKED)}
    for name, model_dir in model_dirs.items():
        scored = score_lists(eval_set, recommend_lists(tf.saved_model.load(model_dir), eval_set.user_ids, k))
        for which, by_slice in scored.items():
            result[which][name] = by_slice
    return result


def judge(candidate_ndcg: float, baseline_ndcg: Optional[float], lower_bound: Optional[float],
          max_relative_decrease: Optional[float], k: int) -> verdicts.Verdict:
    """The ranking gate's verdict on NDCG@k."""
    name = f"NDCG@{k}"
    checks = []
    if lower_bound is not None:
        checks.append(verdicts.bound(f"{name} bound", name, candidate_ndcg, lower_bound, higher_is_better=True))
    if baseline_ndcg is None:
        checks.append(verdicts.info(f"{name} vs last blessed",
                                    f"{name} {candidate_ndcg:.4f}: no blessed model yet to compare with", candidate_ndcg))
    else:
        checks.append(verdicts.relative(
            f"{name} vs last blessed", name, candidate_ndcg, "last blessed", baseline_ndcg,
            None if max_relative_decrease is None else -max_relative_decrease, higher_is_better=True))
    return verdicts.Verdict(GATE, checks)


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        window = input_dict[TRAINING_EXAMPLES]
        examples, _ = rows.this_run_and_earlier(window)
        model = artifact_utils.get_single_instance(input_dict[MODEL])
        baseline = (input_dict.get(BASELINE_MODEL) or [None])[0]
        k = int(exec_properties[K])
        bounds = json.loads(exec_properties[USER_ACTIVITY_BOUNDS])

        eval_set = rows.read_eval_set(examples, bounds, window)
        model_dirs = {CANDIDATE: path_utils.serving_model_path(model.uri)}
        if baseline is not None:
            model_dirs[BASELINE] = path_utils.serving_model_path(baseline.uri)
        metrics = evaluate_models(eval_set, model_dirs, k)

        gated = metrics[ranking.RELEVANT_ALL]
        baseline_ndcg = gated[BASELINE][ranking.OVERALL]["ndcg"] if BASELINE in gated else None
        verdict = judge(gated[CANDIDATE][ranking.OVERALL]["ndcg"], baseline_ndcg,
                        exec_properties.get(NDCG_LOWER_BOUND), exec_properties.get(MAX_RELATIVE_NDCG_DECREASE), k)
        ranking_artifact = artifact_utils.get_single_instance(output_dict[RANKING])
        io_utils.write_string_file(os.path.join(ranking_artifact.uri, METRICS_FILE),
                                   json.dumps({"k": k, "metrics": metrics}, indent=1))
        verdicts.write(artifact_utils.get_single_instance(output_dict[verdicts.output_key(GATE)]), verdict)
        logging.info("Ranking: %s", "; ".join(check.note for check in verdict.checks))


def load_metrics(ranking_uri: str) -> Dict[str, Any]:
    """The ranking_metrics.json a RankingEvaluator wrote."""
    with fileio.open(os.path.join(ranking_uri, METRICS_FILE)) as f:
        return json.load(f)
