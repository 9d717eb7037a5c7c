"""Baselines executor: most-popular and bias-only fitted on the run's training rows, scored on its
eval rows, against the candidate's figures from the RankingEvaluator and TFMA (see component.py)."""
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import evaluation, rows, verdicts
from components.ranking_evaluator import executor as ranking_executor
from models.rating import baselines
from models.metrics import ranking

GATE = "baselines"
TRAINING_EXAMPLES = "training_examples"
EVALUATION, RANKING = "evaluation", ranking_executor.RANKING
NDCG_MARGIN, RMSE_MARGIN = "ndcg_margin_over_popular", "rmse_margin_over_bias_only"
MOST_POPULAR, BIAS_ONLY = "most popular", "bias-only"


def judge(k: int, candidate_ndcg: float, popular_ndcg: float, ndcg_margin: Optional[float],
          candidate_rmse: float, bias_only_rmse: float, rmse_margin: Optional[float]) -> verdicts.Verdict:
    name = f"NDCG@{k}"
    return verdicts.Verdict(GATE, [
        verdicts.relative(f"{name} vs {MOST_POPULAR}", name, candidate_ndcg, MOST_POPULAR, popular_ndcg,
                          ndcg_margin, higher_is_better=True),
        verdicts.relative(f"RMSE vs {BIAS_ONLY}", "RMSE", candidate_rmse, BIAS_ONLY, bias_only_rmse,
                          None if rmse_margin is None else -rmse_margin, higher_is_better=False),
    ])


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        window = input_dict[TRAINING_EXAMPLES]
        train = rows.training_rows(window)
        test = rows.read_split(rows.this_run_and_earlier(window)[0], rows.EVAL)
        ranked = ranking_executor.load_metrics(artifact_utils.get_single_instance(input_dict[RANKING]).uri)
        k = int(ranked["k"])
        candidate_ndcg = ranked["metrics"][ranking.RELEVANT_ALL][ranking_executor.CANDIDATE][ranking.OVERALL]["ndcg"]
        evaluated = evaluation.load(artifact_utils.get_single_instance(input_dict[EVALUATION]).uri)
        candidate_rmse = evaluated[evaluation.OVERALL][evaluation.CANDIDATE][evaluation.RMSE]

        # Most-popular's lists, scored on the same users and relevant movies as the candidate's.
        eval_set = rows.eval_set(train, test)
        popular = eval_set.score(eval_set.peer_lists(ranking.fit_popularity(eval_set.train), k))
        bias_only = baselines.fit_bias_only(train.users, train.movies, train.ratings)
        verdict = judge(k, candidate_ndcg, popular[ranking.OVERALL].ndcg, exec_properties.get(NDCG_MARGIN),
                        candidate_rmse, baselines.rmse(bias_only.predict(test.users, test.movies), test.ratings),
                        exec_properties.get(RMSE_MARGIN))
        verdicts.write(artifact_utils.get_single_instance(output_dict[verdicts.output_key(GATE)]), verdict)
        logging.info("Baselines: %s", "; ".join(check.note for check in verdict.checks))
