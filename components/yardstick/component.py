"""Yardstick: the candidate and the last blessed model compared on data the new span cannot move.

Every other gate compares models on the eval split of the data that just arrived, so a span that
is wrong in a way validation cannot see (ratings shuffled among rows, an upstream bug that
re-rates old movies) makes a wrong model look right there: it fits the new rows and the served
model does not. The yardstick is the eval splits of the earlier spans in the rolling window
(validated Examples artifacts, found through ML Metadata by the span-window resolver): data
already accepted, on which both models trained on the same spans' training rows. A candidate
whose RMSE there is more than `max_relative_rmse_increase` above the last blessed model's, or
whose NDCG@K is more than `max_relative_ndcg_decrease` below it, is not blessed, whatever it
scores on the new span. With no earlier span in the window (the first span, a single file or
folder, Kubeflow v2's one-span window) or no blessed model yet, the verdict says so and passes.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_version, verdicts
from components.yardstick import executor


class YardstickSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.K: ExecutionParameter(type=int),
        executor.MAX_RELATIVE_RMSE_INCREASE: ExecutionParameter(type=float, optional=True),
        executor.MAX_RELATIVE_NDCG_DECREASE: ExecutionParameter(type=float, optional=True),
        code_version.KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.EXAMPLES: ChannelParameter(type=standard_artifacts.Examples),
        executor.MODEL: ChannelParameter(type=standard_artifacts.Model),
        executor.BASELINE_MODEL: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {verdicts.output_key(executor.GATE): ChannelParameter(type=verdicts.GateVerdict)}


class Yardstick(verdicts.GateComponent):
    SPEC_CLASS = YardstickSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
    GATE = executor.GATE

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 baseline_model: Optional[types.BaseChannel], k: int,
                 max_relative_rmse_increase: Optional[float], max_relative_ndcg_decrease: Optional[float],
                 code_digest: str):
        """`examples`: the training window (this run's span and the earlier ones)."""
        super().__init__(YardstickSpec(
            examples=examples, model=model, baseline_model=baseline_model, k=k,
            max_relative_rmse_increase=max_relative_rmse_increase,
            max_relative_ndcg_decrease=max_relative_ndcg_decrease,
            **{verdicts.output_key(self.GATE): types.Channel(type=verdicts.GateVerdict),
               code_version.KEY: code_digest}))
