"""Yardstick executor: RMSE and NDCG@K of the candidate and the last blessed model on the eval
splits of the earlier spans in the training window (see component.py)."""
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import rows, verdicts
from components.ranking_evaluator import executor as ranking_executor
from models.rating import baselines
from models.metrics import ranking
from serving import contract

GATE = "yardstick"
EXAMPLES, MODEL, BASELINE_MODEL = "examples", "model", "baseline_model"
K, MAX_RELATIVE_RMSE_INCREASE, MAX_RELATIVE_NDCG_DECREASE = (
    "k", "max_relative_rmse_increase", "max_relative_ndcg_decrease")
EARLIER = "earlier accepted data"
PREDICT_BATCH = 8192


def predict_ratings(model, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """The ratings a loaded SavedModel's predict_rating signature answers for (user, movie) rows."""
    predict = model.signatures[contract.PREDICT_RATING]
    return np.concatenate([np.zeros(0, np.float32)] + [
        predict(**{contract.USER_ID: tf.constant(users[start:start + PREDICT_BATCH]),
                   contract.MOVIE_ID: tf.constant(movies[start:start + PREDICT_BATCH])})[contract.RATING].numpy().ravel()
        for start in range(0, len(users), PREDICT_BATCH)])


def measure(model_dir: str, test: rows.Rows, eval_set: ranking.EvalSet, k: int) -> Dict[str, float]:
    """{"rmse", "ndcg"} of one model on the yardstick rows."""
    model = tf.saved_model.load(model_dir)
    lists = ranking_executor.recommend_lists(model, eval_set.user_ids, k)
    return {"rmse": baselines.rmse(predict_ratings(model, test.users, test.movies), test.ratings),
            "ndcg": eval_set.score(lists)[ranking.OVERALL].ndcg}


def judge(k: int, spans: List[int], ratings: int, candidate: Dict[str, float], last: Dict[str, float],
          max_rmse_increase: Optional[float], max_ndcg_decrease: Optional[float]) -> verdicts.Verdict:
    where = f"on span{'s' if len(spans) > 1 else ''} {', '.join(map(str, spans))} ({ratings:,} eval ratings)"
    return verdicts.Verdict(GATE, [
        verdicts.relative(f"RMSE on {EARLIER}", f"RMSE {where}", candidate["rmse"], "last blessed", last["rmse"],
                          max_rmse_increase, higher_is_better=False),
        verdicts.relative(f"NDCG@{k} on {EARLIER}", f"NDCG@{k} {where}", candidate["ndcg"], "last blessed",
                          last["ndcg"], None if max_ndcg_decrease is None else -max_ndcg_decrease,
                          higher_is_better=True),
    ])


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        window = input_dict[EXAMPLES]
        model = artifact_utils.get_single_instance(input_dict[MODEL])
        baseline = (input_dict.get(BASELINE_MODEL) or [None])[0]
        _, earlier = rows.this_run_and_earlier(window)
        output = artifact_utils.get_single_instance(output_dict[verdicts.output_key(GATE)])
        if baseline is None or not earlier or baseline.id == model.id:
            why = ("no earlier accepted data (the training window holds only this run's span)" if not earlier else
                   "no blessed model yet to compare with" if baseline is None else
                   "the candidate is the last blessed model (no new data since)")
            verdicts.write(output, verdicts.Verdict(GATE, [verdicts.info(EARLIER, why)]))
            return
        k = int(exec_properties[K])
        test = rows.Rows.concatenate([rows.read_split(e, rows.EVAL) for e in earlier]).newest_per_pair()
        eval_set = rows.eval_set(rows.training_rows(window), test)
        figures = {name: measure(path_utils.serving_model_path(artifact.uri), test, eval_set, k)
                   for name, artifact in (("candidate", model), ("last blessed", baseline))}
        verdict = judge(k, sorted({rows.span(e) for e in earlier}), len(test), figures["candidate"],
                        figures["last blessed"], exec_properties.get(MAX_RELATIVE_RMSE_INCREASE),
                        exec_properties.get(MAX_RELATIVE_NDCG_DECREASE))
        verdicts.write(output, verdict)
        logging.info("Yardstick: %s", "; ".join(check.note for check in verdict.checks))
