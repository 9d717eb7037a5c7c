"""ModelGate: the one gate that decides. It takes the verdict of every model gate and writes the
one blessing that infra validation, the Pusher and the "last blessed model" / warm-start
resolvers read.

The model is blessed when every gate passed; the blessing names each gate's checks and which of
them decided (the failed ones, or, for a blessed model, the one with the least headroom). A gate
is any GateComponent (components/verdicts.py): adding one to the pipeline is that component and
one line in `create_pipeline`'s list of gates; the run summary, the report and the exit code
follow from this component's output. Its blessing is TFX's ModelBlessing with TFX's custom
properties (`blessed`, `current_model_id`), so TFX's resolvers and Pusher read it as they read
the Evaluator's.
"""
import json
from typing import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import verdicts
from components.model_gate import executor


class ModelGateSpec(types.ComponentSpec):
    """The fixed part of the spec; each instance adds one GateVerdict input per gate (its name)."""
    PARAMETERS = {executor.GATES: ExecutionParameter(type=str)}  # JSON list of gate names, in order
    INPUTS = {executor.MODEL: ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {executor.BLESSING: ChannelParameter(type=standard_artifacts.ModelBlessing)}


class ModelGate(base_component.BaseComponent):
    SPEC_CLASS = ModelGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, gates: Sequence[verdicts.GateComponent]):
        names = [gate.GATE for gate in gates]
        if len(set(names)) != len(names) or set(names) & set(ModelGateSpec.INPUTS):
            raise ValueError(f"gate names must be unique and not {sorted(ModelGateSpec.INPUTS)}: {names}")
        # The inputs depend on the gates given, so the spec class does too (a subclass, which
        # BaseComponent accepts; compilers read the instance's spec).
        spec_class = type(ModelGateSpec.__name__, (ModelGateSpec,), {
            "INPUTS": {**ModelGateSpec.INPUTS,
                       **{name: ChannelParameter(type=verdicts.GateVerdict) for name in names}}})
        super().__init__(spec_class(
            model=model, gates=json.dumps(names),
            **{executor.BLESSING: types.Channel(type=standard_artifacts.ModelBlessing)},
            **{gate.GATE: gate.verdict for gate in gates}))
