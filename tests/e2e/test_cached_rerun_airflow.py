"""Under Airflow too, a DAG run with no new data does no work again and pushes nothing.

TFX's Airflow launcher resolves inputs its own way (a resolver is handed the Trainer's models of
every run, tfx/dsl/components/common/resolver.py `_ResolverDriver`) and cannot register one
artifact under two input keys: with TFX's latest-blessed-model strategy, the second DAG run gave
the Evaluator its cached candidate as `model` and as `baseline_model`. ML Metadata is the referee:
the executions the launcher recorded for the second DAG run, and the artifacts in the store.
"""
import datetime
import pathlib

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata, run_summary
from pipeline.pipeline import create_pipeline
from tests.airflow_dags import first_day


@pytest.mark.timeout(2700)  # two DAG runs, one to a push; one push took over 12 min on 2 cores at load ~14
def test_a_dag_run_with_no_new_data_is_all_cached(spans, tmp_path):
    replay, airflow, day1, _, first_id = first_day(tmp_path, spans, 2)
    config = replay.config
    (version,) = replay.versions()
    store = metadata.connect(config)
    artifacts = {a.id for a in store.get_artifacts()}
    served = {str(p): p.stat().st_mtime_ns for p in pathlib.Path(config.serving_dir).rglob("*")}

    again, again_id = airflow.run(day1 + datetime.timedelta(days=1))
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-3000:]
    assert airflow.recorded(again_id)["exit_code"] == 0
    store = metadata.connect(config)
    run = store.get_context_by_type_and_name(run_summary.LEGACY_RUN_CONTEXT, f"{config.pipeline_name}.{again_id}")
    nodes = create_pipeline(config).components
    resolvers = {node.id for node in nodes if type(node).__name__ == "Resolver"}
    states = {run_summary.node_name(store, e.id): metadata_store_pb2.Execution.State.Name(e.last_known_state)
              for e in store.get_executions_by_context(run.id)}
    components = {node.id for node in nodes} - resolvers
    assert {node: states.get(node) for node in components} == {node: "CACHED" for node in components}
    assert {a.id for a in store.get_artifacts()} == artifacts
    assert {str(p): p.stat().st_mtime_ns for p in pathlib.Path(config.serving_dir).rglob("*")} == served
    summary = run_summary.summarize(config, again_id)
    assert summary.blessed and not summary.pushed
    assert summary.push_note == (f"not pushed: nothing new since run {first_id}, whose model is served as "
                                 f"version {version}")

