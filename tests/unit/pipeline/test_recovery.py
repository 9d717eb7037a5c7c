"""What a killed run left, tidied up: a real SQLite ML Metadata store holding what TFX's
LocalDagRunner records for a run (a "pipeline" context named after the pipeline, a "pipeline_run"
context, a "node" context named "<pipeline>.<node>", each execution attributed to all three, see
tfx/orchestration/portable/mlmd/context_lib.py), and the folders TFX gives each execution on disk
(`<root>/<node>/<output key>/<execution id>`, `<node>/.system/executor_execution/<id>`, and the
stateful working dir named by the execution's `__stateful_working_dir_index__`)."""
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata as tfx_metadata

from pipeline import configs, recovery, run_summary

Execution = metadata_store_pb2.Execution
RUN = "20261129-230000.000000"


class Store:
    """Contexts and executions recorded as LocalDagRunner records them, with their folders on disk."""

    def __init__(self, config: configs.PipelineConfig):
        os.makedirs(config.pipeline_root, exist_ok=True)
        self.root = config.pipeline_root
        self.mlmd = metadata_store.MetadataStore(
            tfx_metadata.sqlite_metadata_connection_config(config.metadata_file))
        self.contexts = {}

    def context(self, type_name: str, name: str) -> metadata_store_pb2.Context:
        if (type_name, name) not in self.contexts:
            type_id = self.mlmd.put_context_type(metadata_store_pb2.ContextType(name=type_name))
            context = metadata_store_pb2.Context(type_id=type_id, name=name)
            [context.id] = self.mlmd.put_contexts([context])
            self.contexts[type_name, name] = context
        return self.contexts[type_name, name]

    def execution(self, pipeline: str, run: str, node: str, state, output_keys=()) -> Execution:
        """An execution of `node` in `state`, with a file in each of its folders."""
        type_id = self.mlmd.put_execution_type(metadata_store_pb2.ExecutionType(name=f"tfx.components.{node}"))
        execution = Execution(type_id=type_id, last_known_state=state)
        execution.custom_properties["__stateful_working_dir_index__"].string_value = f"{node}-{run}"
        contexts = [self.context("pipeline", pipeline), self.context("pipeline_run", run),
                    self.context("node", f"{pipeline}.{node}")]
        execution.id = self.mlmd.put_execution(execution, [], contexts)[0]
        for folder in self.folders(node, execution, output_keys):
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "partial"), "w") as f:
                f.write("written before the kill")
        return self.read(execution)

    def folders(self, node: str, execution: Execution, output_keys):
        node_dir = os.path.join(self.root, node)
        return ([os.path.join(node_dir, key, str(execution.id)) for key in output_keys]
                + [os.path.join(node_dir, ".system", "executor_execution", str(execution.id)),
                   os.path.join(node_dir, ".system", "stateful_working_dir",
                                execution.custom_properties["__stateful_working_dir_index__"].string_value)])

    def read(self, execution: Execution) -> Execution:
        return self.mlmd.get_executions_by_id([execution.id])[0]


def config_at(tmp_path) -> configs.PipelineConfig:
    return configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))


def test_a_running_execution_is_canceled_with_a_reason_and_its_folders_removed(tmp_path):
    config = config_at(tmp_path)
    store = Store(config)
    name = config.pipeline_name
    example_gen = store.execution(name, RUN, "ExampleGen", Execution.COMPLETE, ["examples"])
    earlier_transform = store.execution(name, "earlier-run", "Transform", Execution.COMPLETE, ["transform_graph"])
    transform = store.execution(name, RUN, "Transform", Execution.RUNNING, ["transform_graph", "updated_analyzer_cache"])
    trainer = store.execution(name, RUN, "Trainer", Execution.NEW, ["model"])
    other_pipeline = store.execution("another-pipeline", "its-run", "Transform", Execution.RUNNING)

    assert sorted(recovery.abandon_interrupted(config)) == [f"Trainer of run {RUN}", f"Transform of run {RUN}"]

    for execution, node in ((transform, "Transform"), (trainer, "Trainer")):
        after = store.read(execution)
        assert after.last_known_state == Execution.CANCELED
        reason = after.custom_properties[run_summary.ABANDONED].string_value
        assert reason.startswith(f"{node} did not finish: its run was killed or crashed (found by the run started ")
        assert not any(os.path.exists(f) for f in store.folders(node, execution, ["model", "transform_graph",
                                                                                 "updated_analyzer_cache"]))
    # Executions that finished, and those of another pipeline sharing the store, are untouched.
    for execution, node, keys in ((example_gen, "ExampleGen", ["examples"]),
                                  (earlier_transform, "Transform", ["transform_graph"])):
        assert store.read(execution) == execution
        assert all(os.path.exists(os.path.join(f, "partial")) for f in store.folders(node, execution, keys))
    assert store.read(other_pipeline).last_known_state == Execution.RUNNING
    assert run_summary.ABANDONED not in store.read(other_pipeline).custom_properties
    # Nothing is left to abandon the second time.
    assert recovery.abandon_interrupted(config) == []


def test_a_store_without_this_pipeline_or_no_store_abandons_nothing(tmp_path):
    config = config_at(tmp_path)
    assert recovery.abandon_interrupted(config) == []
    store = Store(config)
    other = store.execution("another-pipeline", "its-run", "Transform", Execution.RUNNING)
    assert recovery.abandon_interrupted(config) == []
    assert store.read(other).last_known_state == Execution.RUNNING
