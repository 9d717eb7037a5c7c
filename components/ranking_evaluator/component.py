"""RankingEvaluator: full-catalogue top-K quality of `recommend`, and the one blessing the Pusher reads.

Why a component of its own, between TFMA's Evaluator and the Pusher: TFMA evaluates per example
(and per query with a query key), but a top-K list over the whole catalogue is one answer per
user that depends on every movie and on the user's training movies; expressing that as a TFMA
metric would mean feeding all (user, movie) pairs through it. This component calls each model's
exported `recommend` signature once per user instead, scores the lists with models/ranking.py
(the same code as the benchmark), and combines its NDCG gate with TFMA's RMSE blessing: its
`ranking_blessing` is blessed only when both pass, and it is what the Pusher and the "last blessed model"
resolvers read (TFMA's own blessing says nothing about ranking).
"""
import json
from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_version
from components.ranking_evaluator import executor


class RankingEvaluation(types.Artifact):
    """ranking_metrics.json: per model, relevance and slice, the top-K metrics and the gate's verdict."""
    # "<namespace>.<Name>": the form Kubeflow v2 requires of custom artifact types
    # (tfx/orchestration/kubeflow/v2/compiler_utils.py, get_artifact_schema).
    TYPE_NAME = "movierec.RankingEvaluation"


class RankingEvaluatorSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.K: ExecutionParameter(type=int),
        executor.NDCG_LOWER_BOUND: ExecutionParameter(type=float),
        executor.MAX_NDCG_DECREASE: ExecutionParameter(type=float),
        executor.USER_ACTIVITY_BOUNDS: ExecutionParameter(type=str),  # JSON list of ints
        code_version.KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.EXAMPLES: ChannelParameter(type=standard_artifacts.Examples),
        executor.MODEL: ChannelParameter(type=standard_artifacts.Model),
        executor.BASELINE_MODEL: ChannelParameter(type=standard_artifacts.Model, optional=True),
        executor.RMSE_BLESSING: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {
        executor.RANKING: ChannelParameter(type=RankingEvaluation),
        executor.BLESSING: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class RankingEvaluator(base_component.BaseComponent):
    SPEC_CLASS = RankingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 baseline_model: Optional[types.BaseChannel], rmse_blessing: types.BaseChannel,
                 k: int, ndcg_lower_bound: float, max_ndcg_decrease: float,
                 user_activity_bounds: Sequence[int], code_digest: str):
        # The code digest (code_version.py) is part of TFX's cache key: after an edit to the
        # metrics or this component, a cached model is evaluated again by the new code.
        super().__init__(RankingEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model, rmse_blessing=rmse_blessing,
            ranking=types.Channel(type=RankingEvaluation),
            **{executor.BLESSING: types.Channel(type=standard_artifacts.ModelBlessing)},
            k=k, ndcg_lower_bound=ndcg_lower_bound, max_ndcg_decrease=max_ndcg_decrease,
            user_activity_bounds=json.dumps(list(user_activity_bounds)),
            **{code_version.KEY: code_digest}))
