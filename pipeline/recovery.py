"""What a killed run leaves behind, tidied up by the next run of the same pipeline root.

A run killed mid-component (SIGKILL, the OOM killer, a lost machine) leaves that component's
execution RUNNING in ML Metadata, and whatever its executor had written so far. TFX records an
execution's output artifacts only when it succeeds, so a rerun never caches or resolves those
partial outputs and simply runs the component again; but the run history would show the execution
as running forever, and its partial outputs would stay on disk. The next run, holding the run lock
(so no other run of this pipeline root is live), marks such executions CANCELED with a reason and
deletes the folders TFX gave them.
"""
import datetime
from typing import List

from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.io import fileio
from tfx.orchestration.portable import outputs_utils

from ratings import paths
from pipeline import configs, metadata, run_summary

ACTIVE_STATES = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


def _execution_folders(pipeline_root: str, node: str, execution: metadata_store_pb2.Execution) -> List[str]:
    """The folders TFX gives one execution: `<node>/<output key>/<id>`, its executor scratch space
    under `<node>/.system/*/<id>`, and its stateful working dir; no other execution writes there."""
    node_dir = paths.join(pipeline_root, node)
    folders = (fileio.glob(paths.join(node_dir, "*", str(execution.id)))
               + fileio.glob(paths.join(node_dir, ".system", "*", str(execution.id))))
    stateful = paths.join(node_dir, ".system", "stateful_working_dir",
                          outputs_utils.get_stateful_working_dir_index(execution))
    return folders + [stateful] if fileio.exists(stateful) else folders


def abandon_interrupted(config: configs.PipelineConfig) -> List[str]:
    """Marks executions of this pipeline still NEW or RUNNING as abandoned (CANCELED, with the
    reason as a custom property) and removes their partial outputs; returns "<node> of run <id>"
    for each. Only while holding the run lock."""
    if not metadata.exists(config):
        return []
    store = metadata.connect(config, readonly=False)
    pipeline = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    if pipeline is None:
        return []
    abandoned = []
    found = datetime.datetime.now().isoformat(timespec="seconds")
    for execution in store.get_executions_by_context(pipeline.id):
        if execution.last_known_state not in ACTIVE_STATES:
            continue
        node = run_summary.node_name(store, execution.id)
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties[run_summary.ABANDONED].string_value = (
            f"{node} did not finish: its run was killed or crashed (found by the run started {found})")
        store.put_executions([execution])
        for folder in _execution_folders(config.pipeline_root, node, execution):
            fileio.rmtree(folder)
        abandoned.append(f"{node} of run {run_summary.run_of(store, execution.id)}")
    return abandoned
