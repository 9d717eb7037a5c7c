"""RatingGate: the rating gate, deciding from TFMA's metrics.

TFMA's Evaluator measures RMSE, MAE and the example count, overall and per slice, for the
candidate and the last blessed model; this gate judges them: RMSE under a fixed bound (off by
default: a bound depends on the rating scale), no more than `max_rmse_increase` above the last
blessed model's, and, with `max_slice_rmse_increase` set, the same per slice, but only for slices
of at least `min_slice_examples` examples. Why here and not as TFMA thresholds: TFMA's thresholds
have no minimum slice size (a slice of 42 ratings moves by ~0.1 RMSE from noise alone), and a
TFMA blessing is a ModelBlessing, which Kubeflow v2's resolvers cannot tell from the ModelGate's
(components/verdicts.py).
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_version, verdicts
from components.rating_gate import executor


class RatingGateSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.RMSE_UPPER_BOUND: ExecutionParameter(type=float, optional=True),
        executor.MAX_RMSE_INCREASE: ExecutionParameter(type=float, optional=True),
        executor.MAX_SLICE_RMSE_INCREASE: ExecutionParameter(type=float, optional=True),
        executor.MIN_SLICE_EXAMPLES: ExecutionParameter(type=int),
        code_version.KEY: ExecutionParameter(type=str),
    }
    INPUTS = {executor.EVALUATION: ChannelParameter(type=standard_artifacts.ModelEvaluation)}
    OUTPUTS = {verdicts.output_key(executor.GATE): ChannelParameter(type=verdicts.GateVerdict)}


class RatingGate(verdicts.GateComponent):
    SPEC_CLASS = RatingGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
    GATE = executor.GATE

    def __init__(self, evaluation: types.BaseChannel, rmse_upper_bound: Optional[float],
                 max_rmse_increase: Optional[float], max_slice_rmse_increase: Optional[float],
                 min_slice_examples: int, code_digest: str):
        super().__init__(RatingGateSpec(
            evaluation=evaluation, rmse_upper_bound=rmse_upper_bound, max_rmse_increase=max_rmse_increase,
            max_slice_rmse_increase=max_slice_rmse_increase, min_slice_examples=min_slice_examples,
            **{verdicts.output_key(self.GATE): types.Channel(type=verdicts.GateVerdict),
               code_version.KEY: code_digest}))
