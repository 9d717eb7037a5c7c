"""ServableExport: the servable the InfraValidator and the Pusher take, after the blessing.

The gates judge the Trainer's model, whose `recommend` knows only its training split of the
rolling window, so its lists are scored honestly on the eval split. Serving that model would
offer people films they already rated (their eval-split and older spans' ratings) and rank from a
part of their history. This component takes the Trainer's model and every Examples artifact the
pipeline accepted (resolvers.AcceptedExamplesStrategy: all splits, every validated span) and
writes the servable by models/servable.py's rule: the judged rating weights, the seen tables and
retrieval head over every accepted rating. It runs after the blessing is decided but does not
read it (executor.py says why); the InfraValidator and the Pusher take its servable only when the
model was blessed. Its output key is `servable`, not `model`: TFX's Airflow launcher names output
artifacts `<output key>:<run id>` per artifact type, and the Trainer's Model output is `model`.
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_version
from components.servable_export import executor


class ServableExportSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.HYPERPARAMETERS: ExecutionParameter(type=str),  # JSON: the Trainer's hyperparameters
        code_version.KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.MODEL: ChannelParameter(type=standard_artifacts.Model),
        executor.TRANSFORM_GRAPH: ChannelParameter(type=standard_artifacts.TransformGraph),
        executor.EXAMPLES: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {executor.SERVABLE: ChannelParameter(type=standard_artifacts.Model)}


class ServableExport(base_component.BaseComponent):
    SPEC_CLASS = ServableExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, transform_graph: types.BaseChannel, examples: types.BaseChannel,
                 hyperparameters: str, code_digest: str):
        """`examples`: every accepted Examples artifact; `hyperparameters`: the Trainer's, as JSON."""
        super().__init__(ServableExportSpec(
            model=model, transform_graph=transform_graph, examples=examples,
            servable=types.Channel(type=standard_artifacts.Model), hyperparameters=hyperparameters,
            **{code_version.KEY: code_digest}))
