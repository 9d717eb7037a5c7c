"""A rerun with no new data does no work again: every component's result is the previous run's
(TFX's cache), nothing new is pushed, and the summary says so. ML Metadata is the referee: the
executions TFX recorded for the rerun, and the artifacts in the store before and after it.

The gates compare the candidate with the last blessed model; once the first run blessed its model,
a rerun's candidate (the cached Trainer's) is that model, and comparing it with itself as if it
were new would re-run every gate (and under TFX's Airflow launcher, which cannot record one
artifact under two input keys, fail the Evaluator). The baseline is the newest blessed model other
than the candidate, so the rerun's gates see exactly the first run's inputs.
"""
import pathlib

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata, run_summary
from tests.pipeline_runs import SMALL_RUN_CONFIG, PipelineRun, resolver_ids


def _executions(config, run_id: str) -> dict:
    """{node: execution state} of one run, straight from ML Metadata."""
    store = metadata.connect(config)
    run = store.get_context_by_type_and_name(run_summary.RUN_CONTEXT, run_id)
    return {run_summary.node_name(store, e.id): metadata_store_pb2.Execution.State.Name(e.last_known_state)
            for e in store.get_executions_by_context(run.id)}


def _artifact_ids(config) -> set:
    return {a.id for a in metadata.connect(config).get_artifacts()}


def _tree(folder: str) -> dict:
    """Every file under a folder, with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in pathlib.Path(folder).rglob("*") if p.is_file()}


def _input(config, run_id: str, node: str, key: str) -> list:
    """IDs of the artifacts a node of a run read under an input key (ML Metadata's INPUT events)."""
    store = metadata.connect(config)
    run = store.get_context_by_type_and_name(run_summary.RUN_CONTEXT, run_id)
    (execution,) = [e for e in store.get_executions_by_context(run.id) if run_summary.node_name(store, e.id) == node]
    return sorted(e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key)


def _output(config, run_id: str, node: str, key: str) -> list:
    store = metadata.connect(config)
    run = store.get_context_by_type_and_name(run_summary.RUN_CONTEXT, run_id)
    (execution,) = [e for e in store.get_executions_by_context(run.id) if run_summary.node_name(store, e.id) == node]
    return sorted(e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == metadata_store_pb2.Event.OUTPUT and e.path.steps[0].key == key)


@pytest.mark.timeout(2400)  # two trainings and two cached reruns of the sample, on 2 shared cores
def test_rerun_with_no_new_data_is_all_cached_and_pushes_nothing(ratings_sample, tmp_path):
    run = PipelineRun(tmp_path, ratings_sample)
    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    first_summary = run.summary()
    assert first_summary.blessed and first_summary.pushed
    (version,) = run.versions()
    artifacts, served = _artifact_ids(run.config), _tree(run.config.serving_dir)
    resolvers = resolver_ids(run.config)

    # The same data again, under each local runner: no component executes, no artifact is made.
    for runner in ("local", "beam"):
        again = PipelineRun(tmp_path, ratings_sample, "--runner", runner)()
        assert again.returncode == 0, again.stderr[-3000:]
        summary = run.summary()
        executions = _executions(run.config, summary.run_id)
        assert {node: state for node, state in executions.items() if node not in resolvers} == {
            node: "CACHED" for node in executions if node not in resolvers}, runner
        assert set(executions) - resolvers == set(first_summary.components) - resolvers
        assert _artifact_ids(run.config) == artifacts, runner
        assert _tree(run.config.serving_dir) == served, runner
        # The verdicts and the blessing are the first run's, and the summary says nothing was pushed.
        assert summary.blessed and summary.gates == first_summary.gates
        assert not summary.pushed
        assert (f"push: not pushed: nothing new since run {first_summary.run_id}, whose model is served as "
                f"version {version}") in again.stdout
        assert run.summary().outcome() == (0, "")

    # A changed setting on the same data trains a new candidate: it is judged against the blessed
    # model of the first run, never against itself.
    run.config_file.write_text(SMALL_RUN_CONFIG.replace("epochs: 3", "epochs: 2"))
    changed = run()
    assert changed.returncode in (0, 3), changed.stderr[-3000:]
    summary = run.summary()
    assert summary.components["Trainer"] == "ran" and summary.baseline_metrics
    (first_model,) = _output(run.config, first_summary.run_id, "Trainer", "model")
    (candidate,) = _output(run.config, summary.run_id, "Trainer", "model")
    assert candidate != first_model
    for node in ("Evaluator", "RankingEvaluator", "Yardstick"):
        assert _input(run.config, summary.run_id, node, "baseline_model") == [first_model], node
        assert _input(run.config, summary.run_id, node, "model") == [candidate], node
