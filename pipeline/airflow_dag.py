"""Airflow DAG for movierec: the same `create_pipeline`, scheduled by Airflow (TFX AirflowDagRunner).

Copy (or symlink) this file into Airflow's dags folder, in an environment with movierec and
requirements/airflow.txt installed. Settings come from the environment:
  MOVIEREC_CONFIG    a movierec settings YAML (data, pipeline_root, serving_dir, ...); paths in
                     it should be absolute, as the scheduler's working directory is not yours
  MOVIEREC_SCHEDULE  cron schedule (default "0 3 * * *": every day at 03:00)
The DAG id is the pipeline name; one run at a time (runs share the pipeline's ML Metadata).

One task per component, then `run_summary`, which does what `movierec run` does after its runner
returns: once every other task has finished, whatever their state, it reads the run back from ML
Metadata, logs the summary, writes `<pipeline_root>/reports/<run id>/report.html`, records the exit
code `movierec run` would return as its XCom `exit_code`, and fails (so the DAG run fails) unless
the model was blessed, with the reason: "Error: ..." when a component failed (that task failed
first), "Not blessed: ..." or "Not pushed: ..." when the run finished but pushed nothing.
TFX's legacy launcher, which runs each task, leaves a failed component's execution RUNNING in ML
Metadata; each component task's failure callback marks it FAILED with the error, so the summary,
the report and `movierec report` say what failed and why.
"""
import datetime
import functools
import os

# tensorflow-transform 1.16 needs Keras 2: set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from airflow.exceptions import AirflowFailException  # noqa: E402
from airflow.operators.python import PythonOperator  # noqa: E402
from airflow.utils.state import TaskInstanceState  # noqa: E402
from airflow.utils.trigger_rule import TriggerRule  # noqa: E402
from ml_metadata.proto import metadata_store_pb2  # noqa: E402
from tfx.orchestration import data_types  # noqa: E402
from tfx.orchestration import metadata as tfx_metadata  # noqa: E402
from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig  # noqa: E402

from ratings.errors import EXIT_ERROR, exit_code, one_line  # noqa: E402
from pipeline import configs, metadata, report, run_summary  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402

DEFAULT_SCHEDULE = "0 3 * * *"
SUMMARY_TASK = "run_summary"
EXIT_CODE = "exit_code"  # the summary task's XCom key
_UNFINISHED = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


def record_failure(config: configs.PipelineConfig, context) -> None:
    """A component task's on_failure_callback: its unfinished TFX execution in this run (found
    through the context TFX's launcher registered for it) becomes FAILED, with the error and the
    exit code `movierec run` gives it (5 for drift, else 1)."""
    ti = context["ti"]
    exception = context.get("exception")
    error = one_line(exception) if exception else f"{ti.task_id} failed"
    code = exit_code(exception) if exception else EXIT_ERROR
    pipeline_info = data_types.PipelineInfo(config.pipeline_name, config.pipeline_root, run_id=ti.run_id)
    with tfx_metadata.Metadata(metadata.connection_config(config)) as store:
        component_run = store.get_component_run_context(
            data_types.ComponentInfo(component_type="", component_id=ti.task_id, pipeline_info=pipeline_info))
        if component_run is None:  # it failed before TFX registered an execution
            return
        for execution in store.store.get_executions_by_context(component_run.id):
            if execution.last_known_state in _UNFINISHED:
                execution.last_known_state = metadata_store_pb2.Execution.FAILED
                execution.custom_properties[run_summary.FAILURE].string_value = error
                execution.custom_properties[run_summary.FAILURE_EXIT_CODE].int_value = code
                store.store.put_executions([execution])


def summarize_run(config: configs.PipelineConfig, dag_run, ti, **_) -> int:
    """The `run_summary` task: summary, report and exit code of this DAG run; raises unless 0."""
    failed = sorted(t.task_id for t in dag_run.get_task_instances(state=[TaskInstanceState.FAILED])
                    if t.task_id != ti.task_id)
    summary = run_summary.summarize(config, dag_run.run_id)
    if summary is None:
        ti.xcom_push(key=EXIT_CODE, value=EXIT_ERROR)
        raise AirflowFailException(f"Error: run {dag_run.run_id} left no record in {metadata.describe(config)}"
                                   + (f" ({', '.join(failed)} failed)" if failed else ""))
    if failed and not summary.error:
        summary.error = f"{', '.join(failed)} failed (see its log)"
    ti.log.info("%s\n  report: %s", summary.render(), report.write_report(config, summary))
    code, reason = summary.outcome()
    ti.xcom_push(key=EXIT_CODE, value=code)
    if code:
        raise AirflowFailException(reason)
    return code


def make_dag(settings_file: str, schedule: str):
    config = (configs.load(settings_file) if settings_file else configs.PipelineConfig()).absolute()
    airflow_config = {  # no "dag_id": AirflowDagRunner uses the pipeline name
        "schedule_interval": schedule,
        "start_date": datetime.datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {"on_failure_callback": functools.partial(record_failure, config)},
    }
    dag = AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=airflow_config)).run(create_pipeline(config))
    components = list(dag.tasks)
    summary = PythonOperator(task_id=SUMMARY_TASK, dag=dag, python_callable=functools.partial(summarize_run, config),
                             trigger_rule=TriggerRule.ALL_DONE, on_failure_callback=None)
    summary.set_upstream(components)
    return dag


# Airflow's DagBag collects module-level DAG objects.
DAG = make_dag(os.environ.get("MOVIEREC_CONFIG", ""), os.environ.get("MOVIEREC_SCHEDULE", DEFAULT_SCHEDULE))
