"""The shipped Airflow DAG under Airflow 2.11 itself (requirements/airflow.txt, installed by `make test`).

`airflow dags test` runs a whole DAG run through Airflow's own DagRun and TaskInstance machinery
(states, trigger rules, callbacks, XComs) and TFX's Airflow launcher, in one process: the DAG file
is parsed and TensorFlow imported once, so a day costs about what `movierec run` costs. Task logs
go to its output, one section per task. SQLite for both Airflow's and ML Metadata's records.
"""
import datetime
import os
import shutil

import pytest
from ml_metadata.proto import metadata_store_pb2

from ratings.errors import EXIT_DRIFT
from pipeline import report, run_summary
from pipeline.pipeline import MODEL_GATE
from tests.airflow_dags import DAG_FILE, SUMMARY_TASK, Airflow, first_day
from tests.pipeline_runs import (GATES, Replay, artifact_ids, event_artifacts, execution_states, file_tree, node_ids,
                                 resolver_ids)

DAGBAG_PROBE = """
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
dag = bag.dags["movierec"]  # get_dag() would query the metadata database
print(json.dumps({"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
                  "schedule": str(dag.schedule_interval), "max_active_runs": dag.max_active_runs,
                  "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
                  "trigger_rules": {t.task_id: str(t.trigger_rule) for t in dag.tasks}}))
"""

def task_log(output: str, task_id: str) -> str:
    """One task's section of `airflow dags test` output: from its start to the next task's."""
    start = output.index(f"[DAG TEST] starting task_id={task_id} ")
    end = output.find("[DAG TEST] starting task_id=", start + 1)
    return output[start:end if end > 0 else len(output)]


def test_airflow_dag_loads_with_every_component_in_order(spans, tmp_path):
    replay = Replay(tmp_path / "replay", spans)
    replay.add_span(1)
    airflow = Airflow(tmp_path, replay)
    airflow.env["MOVIEREC_SCHEDULE"] = "30 2 * * *"
    dag = airflow.python(DAGBAG_PROBE, DAG_FILE)
    assert dag["errors"] == {}
    assert set(dag["upstream"]) == node_ids(replay.config) | {SUMMARY_TASK} and GATES <= set(dag["upstream"])
    assert dag["schedule"] == "30 2 * * *" and dag["max_active_runs"] == 1
    # Transform trains on the window of validated spans, which comes after the gate.
    assert "rolling_span_window" in dag["upstream"]["Transform"]
    assert "ValidationGate" in dag["upstream"]["rolling_span_window"]
    assert {"last_accepted_statistics", "StatisticsGen"} <= set(dag["upstream"]["ValidationGate"])
    # What is pushed is the servable built from the judged model and every accepted rating, after the blessing.
    assert set(dag["upstream"]["ServableExport"]) == {MODEL_GATE, "Trainer", "Transform", "accepted_examples"}
    assert set(dag["upstream"]["Pusher"]) == {MODEL_GATE, "InfraValidator", "ServableExport"}
    assert set(dag["upstream"]["InfraValidator"]) == {MODEL_GATE, "ServableExport"}
    assert GATES | {"Trainer"} == set(dag["upstream"][MODEL_GATE])
    assert {"Trainer", "latest_blessed_model_resolver"} <= set(dag["upstream"]["RankingEvaluator"])
    assert {"Evaluator", "RankingEvaluator"} <= set(dag["upstream"]["Baselines"])
    # The summary waits for every other task, whatever their state.
    assert set(dag["upstream"][SUMMARY_TASK]) == set(dag["upstream"]) - {SUMMARY_TASK}
    assert dag["trigger_rules"][SUMMARY_TASK] == "all_done"


def _report_html(config, run_id: str) -> str:
    with open(os.path.join(report.reports_dir(config), run_id.replace(":", "-"), "report.html")) as f:
        return f.read()


@pytest.mark.timeout(2700)  # five DAG runs (one all cached), two to a push; one push took over 12 min on 2 cores at load ~14
def test_scheduled_days_push_refuse_a_bad_span_and_rerun(spans, tmp_path):
    """Day 1 pushes; day 2's span has a user aged 150: the run fails at ValidationGate with the
    reason in that task's log, pushes nothing, and its summary says so; the operator fixes the
    span and re-runs the day as a new DAG run, which warm-starts from day 1's model, is evaluated
    against it, and pushes a second version. Day 3's span keeps to the schema but its rating
    column was defaulted upstream: refused at ValidationGate for drift from span 2, with exit
    code 5 as `movierec run` gives it."""
    replay, airflow, day1, first, first_id = first_day(tmp_path, spans, 3)
    config = replay.config
    assert airflow.recorded(first_id) == {"state": "success", "exit_code": 0,
                                          "tasks": {task: "success" for task in node_ids(config) | {SUMMARY_TASK}}}
    (v1,) = replay.versions()
    summary = run_summary.summarize(config, first_id)
    assert summary.run_id == first_id and summary.span == 1 and summary.blessed and summary.pushed_version == str(v1)
    summary_log = task_log(first.stdout, SUMMARY_TASK)
    assert f"Run {first_id}\n  components: " in summary_log and f"push: pushed as version {v1}" in summary_log
    assert f"<td>{summary.metrics['root_mean_squared_error']:.4f}</td>" in _report_html(config, first_id)

    # The schedule fires again before span 2 lands: nothing new, so every component is cached (ML
    # Metadata's executions), no artifact is made, nothing is pushed, and the summary says so.
    # (TFX's latest-blessed-model strategy handed this run its cached candidate as the baseline, and
    # TFX's Airflow launcher cannot record one artifact under two input keys: the Evaluator failed.)
    artifacts, served = artifact_ids(config), file_tree(config.serving_dir)
    again, again_id = airflow.run(day1 + datetime.timedelta(hours=12))
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-3000:]
    assert airflow.recorded(again_id)["exit_code"] == 0
    components = node_ids(config) - resolver_ids(config)
    assert {node: execution_states(config, again_id).get(node) for node in components} == {node: "CACHED" for node in components}
    assert artifact_ids(config) == artifacts and file_tree(config.serving_dir) == served
    summary = run_summary.summarize(config, again_id)
    assert summary.blessed and not summary.pushed
    assert summary.push_note == f"not pushed: nothing new since run {first_id}, whose model is served as version {v1}"

    replay.add_span(2, corrupt=True)
    refused, refused_id = airflow.run(day1 + datetime.timedelta(days=1))
    assert refused.returncode != 0 and "DagRun failed" in refused.stderr
    recorded = airflow.recorded(refused_id)
    assert recorded["state"] == "failed" and recorded["exit_code"] == 1
    assert recorded["tasks"]["ValidationGate"] == "failed" and recorded["tasks"][SUMMARY_TASK] == "failed"
    assert {recorded["tasks"][task] for task in ("Transform", "Trainer", "Evaluator", "Pusher")} == {"upstream_failed"}
    reason = "data validation found 1 anomaly: split 'eval', feature 'age': Out-of-range values: Unexpectedly large value: 150."
    assert f"DataValidationError: {reason}" in task_log(refused.stdout, "ValidationGate")
    assert f"AirflowFailException: Error: {reason}" in task_log(refused.stdout, SUMMARY_TASK)
    summary = run_summary.summarize(config, refused_id)
    assert summary.components["ValidationGate"] == "failed" and "Transform" not in summary.components
    assert summary.error == reason and summary.outcome() == (1, f"Error: {reason}")
    html = _report_html(config, refused_id)
    assert f"<strong>Error:</strong> {reason}" in html and "Validation against the schema and the last accepted data: failed" in html
    assert replay.versions() == [v1]

    # The export is fixed and span 2 delivered again; the day is re-run as a new DAG run (a
    # cleared task of the failed run would hit TFX's launcher reusing that run's executions).
    shutil.rmtree(replay.data / "span-2")
    replay.add_span(2)
    rerun, rerun_id = airflow.run(day1 + datetime.timedelta(days=1, hours=6))
    assert rerun.returncode == 0, rerun.stdout[-5000:] + rerun.stderr[-3000:]
    assert airflow.recorded(rerun_id)["exit_code"] == 0
    summary = run_summary.summarize(config, rerun_id)
    assert summary.span == 2 and summary.blessed and summary.baseline_metrics
    # Compared with span 1 for drift: the refused span 2 never became a baseline.
    assert summary.drift_baseline_span == 1 and summary.drift and not summary.drift_accepted
    (base_model,) = event_artifacts(config, rerun_id, "Trainer", metadata_store_pb2.Event.INPUT, "base_model")
    (day_1_model,) = event_artifacts(config, first_id, "Trainer", metadata_store_pb2.Event.OUTPUT, "model")
    assert base_model == day_1_model
    v2 = int(summary.pushed_version)
    assert replay.versions() == [v1, v2]

    replay.add_span(3, rating=lambda rating: 3)
    drifted, drifted_id = airflow.run(day1 + datetime.timedelta(days=2))
    assert drifted.returncode != 0 and "DagRun failed" in drifted.stderr
    recorded = airflow.recorded(drifted_id)
    assert recorded["state"] == "failed" and recorded["exit_code"] == EXIT_DRIFT
    assert recorded["tasks"]["ValidationGate"] == "failed" and recorded["tasks"]["Transform"] == "upstream_failed"
    drift = ("data drift from span 2, the last accepted: feature 'rating': Jensen-Shannon divergence 1.0000, "
             "above the threshold 0.15 (movierec run --accept-drift takes it on purpose)")
    assert f"DriftError: {drift}" in task_log(drifted.stdout, "ValidationGate")
    assert f"AirflowFailException: Error: {drift}" in task_log(drifted.stdout, SUMMARY_TASK)
    assert run_summary.summarize(config, drifted_id).outcome() == (EXIT_DRIFT, f"Error: {drift}")
    assert replay.versions() == [v1, v2]

    # The history `movierec report` prints, from ML Metadata: the four DAG runs.
    rows, _ = report.history(config, 10)
    assert [(row[0], row[7], row[8]) for row in rows] == [(first_id, "yes", str(v1)), (again_id, "yes", ""),
                                                          (refused_id, "-", ""), (rerun_id, "yes", str(v2)),
                                                          (drifted_id, "-", "")]
    assert rows[2][-1] == reason and rows[4][-1] == drift
