"""Kubeflow Pipelines v2 / Vertex AI Pipelines: compile the same pipeline to a pipeline JSON.

The JSON runs every component in a container built from the repo's Dockerfile (our components
and their locked dependencies); paths in the config must be ones the cluster can read (gs://...).
A Vertex schedule is created from the JSON with google-cloud-aiplatform (see README). Kubeflow
supports fewer resolver strategies, so there each run trains on its newest validated span
(see pipeline._carried_over).
"""
import json
import os

from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from pipeline import configs
from pipeline.pipeline import KUBEFLOW_V2, create_pipeline

PIPELINE_FILE = "pipeline.json"
SCHEDULE_FILE = "schedule.json"


def compile_pipeline(config: configs.PipelineConfig, output_dir: str, image: str,
                     schedule: str = "") -> str:
    """Writes `<output_dir>/pipeline.json` (and schedule.json if a cron schedule is given)."""
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=output_dir, output_filename=PIPELINE_FILE)
    runner.run(create_pipeline(config, KUBEFLOW_V2))
    if schedule:
        with open(os.path.join(output_dir, SCHEDULE_FILE), "w") as f:
            json.dump({"display_name": f"{config.pipeline_name}-schedule", "cron": schedule,
                       "template_path": PIPELINE_FILE, "pipeline_root": config.pipeline_root,
                       "max_concurrent_run_count": 1}, f, indent=2)
    return os.path.join(output_dir, PIPELINE_FILE)
