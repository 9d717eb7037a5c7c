"""InfraValidator: the candidate model must load and answer in a TF Serving set up as production is.

TFX's own InfraValidator (tfx/components/infra_validator) runs the model server only in Docker
(`local_docker_runner.LocalDockerRunner`) or Kubernetes (`kubernetes_runner.KubernetesRunner`),
chosen by `executor._create_model_server_runner` from ServingSpec's `serving_platform` oneof, and
builds its requests from tf.Examples only (`request_builder`), so it can neither start a local
process nor call `recommend` with its IDs, k and exclusions. This component plays its role with
the same output, TFX's standard `InfraBlessing` (INFRA_BLESSED / INFRA_NOT_BLESSED file and the
`blessed` property that TFX's Pusher checks, `tfx.components.util.model_utils.is_infra_validated`).
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.infra_validator import executor

MODEL_KEY, MODEL_BLESSING_KEY, BLESSING_KEY = "model", "model_blessing", "blessing"
MODEL_NAME_KEY, MODEL_SERVER_KEY, TIMEOUT_KEY = "model_name", "model_server", "timeout_seconds"


class InfraValidatorSpec(ComponentSpec):
    PARAMETERS = {
        MODEL_NAME_KEY: ExecutionParameter(type=str),
        # A tensorflow_model_server binary; "" looks one up on PATH, else runs `movierec serve`.
        MODEL_SERVER_KEY: ExecutionParameter(type=str, optional=True),
        TIMEOUT_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        # A model the gates did not bless is not pushed anyway: it is not served either.
        MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
    }
    OUTPUTS = {BLESSING_KEY: ChannelParameter(type=standard_artifacts.InfraBlessing)}


class InfraValidator(base_component.BaseComponent):
    """Loads the model into a model server with the production deploy files (batching and warmup
    on) and sends one canary request per client signature; outputs an InfraBlessing."""

    SPEC_CLASS = InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_name: str, model_blessing: types.BaseChannel = None,
                 model_server: str = "", timeout_seconds: int = executor.DEFAULT_TIMEOUT_SECONDS):
        super().__init__(spec=InfraValidatorSpec(
            model=model, model_blessing=model_blessing, model_name=model_name, model_server=model_server,
            timeout_seconds=timeout_seconds,
            blessing=types.Channel(type=standard_artifacts.InfraBlessing)))
