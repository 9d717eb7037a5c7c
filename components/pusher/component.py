"""AtomicPusher: TFX's Pusher with an executor that publishes versions atomically (executor.py).

A subclass, so the pipeline wires it like TFX's Pusher (model, model_blessing, infra_blessing,
push_destination) and the executor is fixed here rather than passed inline.
"""
from tfx.components.pusher.component import Pusher
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2

from components.pusher import executor


class AtomicPusher(Pusher):
    """Pushes a model to a TF Serving model base path on a filesystem, only when the model gates
    blessed it and infra validation (components/infra_validator) found that TF Serving serves it."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model, model_blessing, infra_blessing, push_base: str):
        super().__init__(
            model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=push_base)))
