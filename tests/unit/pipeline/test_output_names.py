"""Every output of one pipeline run can be recorded in ML Metadata under TFX's Airflow launcher.

The referee is TFX's own code and ML Metadata's own schema. The Airflow launcher
(`tfx/orchestration/launcher/base_component_launcher.py`, `BaseComponentLauncher._run_driver`) runs
each component's driver, whose `pre_execution` (`tfx/dsl/components/base/base_driver.py`) creates
the outputs in `BaseDriver._prepare_output_artifacts`: `artifact.name = f'{name}:{run_id}'`, the
output key and the Airflow run id. ML Metadata's Artifact table is UNIQUE on (type_id, name), so two
nodes that output the same artifact type under the same key cannot both be recorded in one run: the
second fails with AlreadyExistsError (issue 25: Evaluator's and RankingEvaluator's `blessing`).
LocalDagRunner names artifacts differently, so only this check (or Airflow itself) sees it.

The test calls each node's own driver to name its outputs (ExampleGen's driver overrides the naming;
Resolver and Importer drivers override `pre_execution` and create no artifacts) and records them in a
real, in-memory ML Metadata store, over every graph `create_pipeline` builds.
"""
from typing import Dict, Set

import pytest
from ml_metadata import errors
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.components.base import base_driver
from tfx.orchestration import data_types
from tfx.orchestration import metadata as tfx_metadata

from pipeline import configs
from pipeline.pipeline import KUBEFLOW_V2, LOCAL, create_pipeline

RUN_ID = "scheduled__2026-12-04T03:00:00+00:00"  # an Airflow run id


def record_outputs_as_airflow_would(pipeline, root: str) -> Dict[str, Set[str]]:
    """Names every new output of one run with its node's driver and puts it into ML Metadata;
    fails naming the two nodes, the key and the type when ML Metadata refuses one. Returns the
    output keys recorded, by node (resolvers and importers are left out: they create no artifact)."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.fake_database.SetInParent()  # ML Metadata's in-memory SQLite store
    pipeline_info = data_types.PipelineInfo(pipeline.pipeline_info.pipeline_name, root, run_id=RUN_ID)
    recorded = {}  # (type name, artifact name) -> node id
    keys = {}
    with tfx_metadata.Metadata(connection) as store:
        for execution_id, node in enumerate(pipeline.components, start=1):
            if node.driver_class.pre_execution is not base_driver.BaseDriver.pre_execution:
                continue  # Resolver, Importer: they record existing or imported artifacts
            driver = node.driver_class(metadata_handle=store)
            component_info = data_types.ComponentInfo(node.type, node.id, pipeline_info)
            exec_properties = driver.resolve_exec_properties(dict(node.exec_properties), pipeline_info,
                                                             component_info)
            outputs = driver._prepare_output_artifacts(  # pylint: disable=protected-access
                input_artifacts={}, output_dict=node.outputs, exec_properties=exec_properties,
                execution_id=execution_id, pipeline_info=pipeline_info, component_info=component_info)
            keys[node.id] = set(outputs)
            for key, artifacts in outputs.items():
                for artifact in artifacts:
                    try:
                        store.publish_artifacts([artifact])
                        refused = None
                    except errors.AlreadyExistsError as e:
                        refused = e
                    if refused:
                        first_node = recorded[(artifact.type_name, artifact.name)]
                        pytest.fail(f"{first_node} and {node.id} both output {artifact.type_name} under the "
                                    f"key '{key}': TFX's Airflow launcher names both '{artifact.name}' and "
                                    f"ML Metadata refuses the second ({type(refused).__name__}); rename one key")
                    recorded[(artifact.type_name, artifact.name)] = node.id
    return keys


def _data(tmp_path, layout: str) -> str:
    """A ratings CSV, or a folder of spans, with side tables: the graphs differ by layout."""
    folder = tmp_path / "data"
    ratings = folder / ("span-1" if layout == "spans" else "") / "ratings.csv"
    ratings.parent.mkdir(parents=True)
    ratings.write_text("user_id,movie_id,rating,timestamp\n1,1,4,880000000\n")
    (folder / "movies.csv").write_text("movie_id,title,year,genres\n1,Toy Story,1995,Animation\n")
    (folder / "users.csv").write_text("user_id,age,gender,occupation,zip\n1,24,M,technician,85711\n")
    return str(folder if layout == "spans" else ratings)


@pytest.mark.parametrize("orchestrator", [LOCAL, KUBEFLOW_V2])
@pytest.mark.parametrize("layout", ["file", "spans"])
def test_no_two_outputs_of_one_type_share_a_key(tmp_path, orchestrator, layout):
    config = configs.PipelineConfig(data=_data(tmp_path, layout), pipeline_root=str(tmp_path / "root"),
                                    serving_dir=str(tmp_path / "serving"))
    pipeline = create_pipeline(config, orchestrator)
    nodes = {node.id: node for node in pipeline.components}
    recorded = record_outputs_as_airflow_would(pipeline, str(tmp_path / "root"))
    # Every node is covered: each output of every node that creates artifacts was recorded, and
    # the nodes left out are the resolvers and the importer (they pass on recorded artifacts).
    assert recorded == {name: set(node.outputs) for name, node in nodes.items() if name in recorded}
    assert {type(nodes[name]).__name__ for name in set(nodes) - set(recorded)} <= {"Resolver", "Importer"}
    assert recorded["ValidationGate"] == {"validated_examples", "accepted_statistics"}
    if orchestrator == LOCAL:  # the drift baseline: KFP's resolvers select by type only
        assert type(nodes["last_accepted_statistics"]).__name__ == "Resolver"
    if layout == "spans" and orchestrator == LOCAL:  # every optional node is in this graph
        assert "rolling_span_window" in nodes


def test_the_check_catches_a_collision(tmp_path):
    """A graph with TFX's DistributionValidator beside ExampleValidator (both output
    ExampleAnomalies under `anomalies`) is refused, naming both nodes, the key and the type."""
    from tfx import v1 as tfx
    from tfx.components.distribution_validator.component import DistributionValidator

    config = configs.PipelineConfig(data=_data(tmp_path, "file"), pipeline_root=str(tmp_path / "root"),
                                    serving_dir=str(tmp_path / "serving"))
    pipeline = create_pipeline(config)
    nodes = {node.id: node for node in pipeline.components}
    statistics = nodes["StatisticsGen"].outputs["statistics"]
    drift = DistributionValidator(statistics=statistics, baseline_statistics=statistics,
                                  config=tfx.proto.DistributionValidatorConfig())
    pipeline.components = [*pipeline.components, drift]
    with pytest.raises(pytest.fail.Exception) as refused:
        record_outputs_as_airflow_would(pipeline, str(tmp_path / "root"))
    nodes, _, why = str(refused.value).partition(" both output ")
    assert set(nodes.split(" and ")) == {"ExampleValidator", "DistributionValidator"}
    assert why.startswith(f"ExampleAnomalies under the key 'anomalies': TFX's Airflow launcher names both "
                          f"'anomalies:{RUN_ID}'")
