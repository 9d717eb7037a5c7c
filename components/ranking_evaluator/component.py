"""RankingEvaluator: full-catalogue top-K quality of `recommend`, and the ranking gate's verdict.

Why a component of its own, beside TFMA's Evaluator: TFMA evaluates per example (and per query
with a query key), but a top-K list over the whole catalogue is one answer per user that depends
on every movie and on the user's training movies; expressing that as a TFMA metric would mean
feeding all (user, movie) pairs through it. This component calls each model's exported
`recommend` signature once per user instead and scores the lists with models/metrics/ranking.py (the same
code as the benchmark). Its verdict (NDCG@K against the last blessed model's, and an absolute
bound if one is set) is one of those the ModelGate combines; the baselines gate compares the same
figures with most-popular's.
"""
import json
from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_version, verdicts
from components.ranking_evaluator import executor


class RankingEvaluation(types.Artifact):
    """ranking_metrics.json: per model, relevance and slice, the top-K metrics."""
    # "<namespace>.<Name>": the form Kubeflow v2 requires of custom artifact types
    # (tfx/orchestration/kubeflow/v2/compiler_utils.py, get_artifact_schema).
    TYPE_NAME = "movierec.RankingEvaluation"


class RankingEvaluatorSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.K: ExecutionParameter(type=int),
        executor.NDCG_LOWER_BOUND: ExecutionParameter(type=float, optional=True),
        executor.MAX_RELATIVE_NDCG_DECREASE: ExecutionParameter(type=float, optional=True),
        executor.USER_ACTIVITY_BOUNDS: ExecutionParameter(type=str),  # JSON list of ints
        code_version.KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        # The training window, this run's examples the newest: their eval split is scored
        # against the window's train splits (components/rows.py, this_run_and_earlier).
        executor.TRAINING_EXAMPLES: ChannelParameter(type=standard_artifacts.Examples),
        executor.MODEL: ChannelParameter(type=standard_artifacts.Model),
        executor.BASELINE_MODEL: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        executor.RANKING: ChannelParameter(type=RankingEvaluation),
        verdicts.output_key(executor.GATE): ChannelParameter(type=verdicts.GateVerdict),
    }


class RankingEvaluator(verdicts.GateComponent):
    SPEC_CLASS = RankingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
    GATE = executor.GATE

    def __init__(self, training_examples: types.BaseChannel,
                 model: types.BaseChannel, baseline_model: Optional[types.BaseChannel], k: int,
                 ndcg_lower_bound: Optional[float], max_relative_ndcg_decrease: Optional[float],
                 user_activity_bounds: Sequence[int], code_digest: str):
        # The code digest (code_version.py) is part of TFX's cache key: after an edit to the
        # metrics or this component, a cached model is evaluated again by the new code.
        super().__init__(RankingEvaluatorSpec(
            training_examples=training_examples, model=model, baseline_model=baseline_model,
            ranking=types.Channel(type=RankingEvaluation), k=k, ndcg_lower_bound=ndcg_lower_bound,
            max_relative_ndcg_decrease=max_relative_ndcg_decrease,
            user_activity_bounds=json.dumps(list(user_activity_bounds)),
            **{verdicts.output_key(self.GATE): types.Channel(type=verdicts.GateVerdict),
               code_version.KEY: code_digest}))
