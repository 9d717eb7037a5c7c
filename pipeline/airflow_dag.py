"""Airflow DAG for movierec: the same `create_pipeline`, scheduled by Airflow (TFX AirflowDagRunner).

Copy (or symlink) this file into Airflow's dags folder, in an environment with movierec and
requirements/airflow.txt installed. Settings come from the environment:
  MOVIEREC_CONFIG    a movierec settings YAML (data, pipeline_root, serving_dir, ...); paths in
                     it should be absolute, as the scheduler's working directory is not yours
  MOVIEREC_SCHEDULE  cron schedule (default "0 3 * * *": every day at 03:00)
The DAG id is the pipeline name; one run at a time (runs share the pipeline's ML Metadata).
"""
import datetime
import os

# tensorflow-transform 1.16 needs Keras 2: set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig  # noqa: E402

from pipeline import configs  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402

DEFAULT_SCHEDULE = "0 3 * * *"


def make_dag(settings_file: str, schedule: str):
    config = configs.load(settings_file) if settings_file else configs.PipelineConfig()
    airflow_config = {  # no "dag_id": AirflowDagRunner uses the pipeline name
        "schedule_interval": schedule,
        "start_date": datetime.datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
    }
    return AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=airflow_config)).run(
        create_pipeline(config.absolute()))


# Airflow's DagBag collects module-level DAG objects.
DAG = make_dag(os.environ.get("MOVIEREC_CONFIG", ""), os.environ.get("MOVIEREC_SCHEDULE", DEFAULT_SCHEDULE))
