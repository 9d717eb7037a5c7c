"""Runs the pipeline on a local orchestrator: LocalDagRunner (default) or BeamDagRunner.

Both run the same `create_pipeline(config)`; ML Metadata lives in SQLite under the pipeline root.
Data components use Beam with `config.beam_pipeline_args` (e.g. the DirectRunner's
multi-processing mode locally, or Dataflow/Flink/Spark arguments at scale).
"""
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline import configs
from pipeline.pipeline import create_pipeline

RUNNERS = ("local", "beam")


def run(config: configs.PipelineConfig, runner: str = "local") -> None:
    """Runs one pipeline run to completion; a failing component raises."""
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    pipeline = create_pipeline(config)
    if runner == "local":
        LocalDagRunner().run(pipeline)
    else:
        BeamDagRunner().run(pipeline)
