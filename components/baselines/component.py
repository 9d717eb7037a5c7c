"""Baselines: the baselines gate, comparing the candidate with baselines fitted in the same run
on the same rows.

A fixed bound ("NDCG@10 >= 0.3", "RMSE <= 1.0") depends on the data's size and rating scale, not
on the model: the same lists score lower NDCG on a smaller eval split, and an RMSE bound means
nothing on another scale. Baselines fitted on this run's training rows and scored on its eval
rows move with the data exactly as the candidate does. Ranking: the candidate's NDCG@K (the
RankingEvaluator's) must beat most-popular's lists (training rating counts, each user's training
movies left out) by `ndcg_margin_over_popular`. Rating: the candidate's RMSE (TFMA's) must be
`rmse_margin_over_bias_only` below the bias-only model's (models/rating/baselines.py). A margin set to
None reports the comparison without gating on it.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_version, verdicts
from components.baselines import executor
from components.ranking_evaluator.component import RankingEvaluation


class BaselinesSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.NDCG_MARGIN: ExecutionParameter(type=float, optional=True),
        executor.RMSE_MARGIN: ExecutionParameter(type=float, optional=True),
        code_version.KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        # The training window, this run's examples the newest (components/rows.py).
        executor.TRAINING_EXAMPLES: ChannelParameter(type=standard_artifacts.Examples),
        executor.EVALUATION: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        executor.RANKING: ChannelParameter(type=RankingEvaluation),
    }
    OUTPUTS = {verdicts.output_key(executor.GATE): ChannelParameter(type=verdicts.GateVerdict)}


class Baselines(verdicts.GateComponent):
    SPEC_CLASS = BaselinesSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
    GATE = executor.GATE

    def __init__(self, training_examples: types.BaseChannel,
                 evaluation: types.BaseChannel, ranking: types.BaseChannel,
                 ndcg_margin_over_popular: Optional[float], rmse_margin_over_bias_only: Optional[float],
                 code_digest: str):
        super().__init__(BaselinesSpec(
            training_examples=training_examples, evaluation=evaluation, ranking=ranking,
            ndcg_margin_over_popular=ndcg_margin_over_popular, rmse_margin_over_bias_only=rmse_margin_over_bias_only,
            **{verdicts.output_key(self.GATE): types.Channel(type=verdicts.GateVerdict),
               code_version.KEY: code_digest}))
