"""A rerun with no new data does no work again: every component's result is the previous run's
(TFX's cache), nothing new is pushed, and the summary says so. ML Metadata is the referee: the
executions TFX recorded for the rerun, and the artifacts in the store before and after it.

The gates compare the candidate with the last blessed model; once the first run blessed its model,
a rerun's candidate (the cached Trainer's) is that model, and comparing it with itself as if it
were new would re-run every gate (and under TFX's Airflow launcher, which cannot record one
artifact under two input keys, fail the Evaluator). The baseline is the newest blessed model other
than the candidate, so the rerun's gates see exactly the first run's inputs.
"""

import pytest
from ml_metadata.proto import metadata_store_pb2

from tests.pipeline_runs import (SMALL_RUN_CONFIG, PipelineRun, artifact_ids, event_artifacts, execution_states,
                                 file_tree, resolver_ids)


@pytest.mark.timeout(2400)  # two trainings and two cached reruns of the sample, on 2 shared cores
def test_rerun_with_no_new_data_is_all_cached_and_pushes_nothing(ratings_sample, tmp_path):
    run = PipelineRun(tmp_path, ratings_sample)
    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    first_summary = run.summary()
    assert first_summary.blessed and first_summary.pushed
    (version,) = run.versions()
    artifacts, served = artifact_ids(run.config), file_tree(run.config.serving_dir)
    resolvers = resolver_ids(run.config)

    # The same data again, under each local runner: no component executes, no artifact is made.
    for runner in ("local", "beam"):
        again = PipelineRun(tmp_path, ratings_sample, "--runner", runner)()
        assert again.returncode == 0, again.stderr[-3000:]
        summary = run.summary()
        executions = execution_states(run.config, summary.run_id)
        assert {node: state for node, state in executions.items() if node not in resolvers} == {
            node: "CACHED" for node in executions if node not in resolvers}, runner
        assert set(executions) - resolvers == set(first_summary.components) - resolvers
        assert artifact_ids(run.config) == artifacts, runner
        assert file_tree(run.config.serving_dir) == served, runner
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
    (first_model,) = event_artifacts(run.config, first_summary.run_id, "Trainer", metadata_store_pb2.Event.OUTPUT, "model")
    (candidate,) = event_artifacts(run.config, summary.run_id, "Trainer", metadata_store_pb2.Event.OUTPUT, "model")
    assert candidate != first_model
    for node in ("Evaluator", "RankingEvaluator", "Yardstick"):
        assert event_artifacts(run.config, summary.run_id, node, metadata_store_pb2.Event.INPUT, "baseline_model") == [first_model], node
        assert event_artifacts(run.config, summary.run_id, node, metadata_store_pb2.Event.INPUT, "model") == [candidate], node
