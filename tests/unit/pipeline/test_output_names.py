"""Every output of one pipeline run can be recorded in ML Metadata under TFX's Airflow launcher.

The referee is TFX's own code and ML Metadata's own schema. The Airflow launcher
(`tfx/orchestration/launcher/base_component_launcher.py`, `BaseComponentLauncher._run_driver`) runs
each component's driver, whose `pre_execution` (`tfx/dsl/components/base/base_driver.py`) creates
the outputs in `BaseDriver._prepare_output_artifacts`: `artifact.name = f'{name}:{run_id}'`, the
output key and the Airflow run id. ML Metadata's Artifact table is UNIQUE on (type_id, name), so two
nodes that output the same artifact type under the same key cannot both be recorded in one run: the
second fails with AlreadyExistsError (issue 25: Evaluator's and RankingEvaluator's `blessing`).
LocalDagRunner names artifacts differently, so only this check (or Airflow itself) sees it.

The same launcher records a component's inputs with one INPUT event per input key and index
(`tfx/orchestration/metadata.py`, `Metadata.register_execution` -> `_artifact_and_event_pairs`),
and ML Metadata keeps one event per (artifact, execution, type): a node given one artifact under
two input keys is never registered ("Given event already exists"). TFX's IR-based runners merge
such events into one with two paths, so again only Airflow fails (issue 25: the ranking and
baselines gates got this run's examples as `examples` and inside `training_examples`).

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


def producer(channel, nodes) -> tuple:
    """(node id, output key) of the output a channel carries, through resolvers (which hand on the
    artifacts of the channel they were given under the same key)."""
    node = nodes.get(channel.producer_component_id)
    if node is not None and type(node).__name__ == "Resolver":
        return producer(node._raw_inputs[channel.output_key], nodes)  # pylint: disable=protected-access
    return channel.producer_component_id, channel.output_key


def shared_inputs(pipeline) -> Dict[str, Set[str]]:
    """Nodes that take one producer's output under two input keys: {node id: those keys}."""
    nodes = {node.id: node for node in pipeline.components}
    shared = {}
    for node in pipeline.components:
        if type(node).__name__ == "Resolver":
            continue
        by_producer = {}
        for key, channel in node.inputs.items():
            by_producer.setdefault(producer(channel, nodes), set()).add(key)
        for keys in by_producer.values():
            if len(keys) > 1:
                shared[node.id] = keys
    return shared


def register_as_airflow_would(inputs: Dict[str, list]) -> None:
    """TFX's Airflow launcher registering one execution with these inputs, in ML Metadata."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.fake_database.SetInParent()
    pipeline_info = data_types.PipelineInfo("movierec", "/tmp/root", run_id=RUN_ID)
    with tfx_metadata.Metadata(connection) as store:
        for artifacts in inputs.values():
            store.publish_artifacts([a for a in artifacts if not a.id])
        contexts = store.register_pipeline_contexts_if_not_exists(pipeline_info)
        store.register_execution(pipeline_info=pipeline_info, contexts=contexts, input_artifacts=inputs,
                                 component_info=data_types.ComponentInfo("Gate", "Gate", pipeline_info))


def test_one_artifact_under_two_input_keys_cannot_be_registered():
    """The rule the graph check below stands for, shown with TFX's launcher and ML Metadata."""
    from tfx.types import standard_artifacts

    def examples(uri):
        artifact = standard_artifacts.Examples()
        artifact.uri = uri
        return artifact

    register_as_airflow_would({"examples": [examples("/tmp/a")], "training_examples": [examples("/tmp/b")]})
    same = examples("/tmp/a")
    # ML Metadata refuses the second event; TFX then retries as for a known component run, which
    # this one is not, so its AlreadyExistsError arrives as the context of an AssertionError.
    with pytest.raises((errors.AlreadyExistsError, AssertionError)) as refused:
        register_as_airflow_would({"examples": [same], "training_examples": [same]})
    cause = refused.value if isinstance(refused.value, errors.AlreadyExistsError) else refused.value.__context__
    assert isinstance(cause, errors.AlreadyExistsError) and "Given event already exists" in str(cause)


def _data(tmp_path, layout: str) -> str:
    """A ratings CSV, or a folder of spans, with side tables: the graphs differ by layout."""
    folder = tmp_path / "data"
    ratings = folder / ("span-1" if layout == "spans" else "") / "ratings.csv"
    ratings.parent.mkdir(parents=True)
    ratings.write_text("user_id,movie_id,rating,timestamp\n1,1,4,880000000\n")
    (folder / "movies.csv").write_text("movie_id,title,year,genres\n1,Toy Story,1995,Animation\n")
    (folder / "users.csv").write_text("user_id,age,gender,occupation,zip\n1,24,M,technician,85711\n")
    return str(folder if layout == "spans" else ratings)


def _pipeline(tmp_path, layout: str, orchestrator: str):
    """The graph create_pipeline builds for that data layout and orchestrator."""
    config = configs.PipelineConfig(data=_data(tmp_path, layout), pipeline_root=str(tmp_path / "root"),
                                    serving_dir=str(tmp_path / "serving"))
    return create_pipeline(config, orchestrator)


@pytest.mark.parametrize("orchestrator", [LOCAL, KUBEFLOW_V2])
@pytest.mark.parametrize("layout", ["file", "spans"])
def test_no_two_outputs_of_one_type_share_a_key(tmp_path, orchestrator, layout):
    pipeline = _pipeline(tmp_path, layout, orchestrator)
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
    assert recorded["Trainer"] == {"model", "model_run"} and recorded["ServableExport"] == {"servable"}


@pytest.mark.parametrize("orchestrator", [LOCAL, KUBEFLOW_V2])
@pytest.mark.parametrize("layout", ["file", "spans"])
def test_no_node_takes_one_output_under_two_input_keys(tmp_path, orchestrator, layout):
    pipeline = _pipeline(tmp_path, layout, orchestrator)
    assert shared_inputs(pipeline) == {}
    # The check sees through resolvers: the training window is the ValidationGate's output.
    nodes = {node.id: node for node in pipeline.components}
    assert producer(nodes["Trainer"].inputs["examples"], nodes) == ("ValidationGate", "validated_examples")


def test_the_check_catches_a_collision(tmp_path):
    """A graph with TFX's DistributionValidator beside ExampleValidator (both output
    ExampleAnomalies under `anomalies`) is refused, naming both nodes, the key and the type."""
    from tfx.components.distribution_validator.component import DistributionValidator
    from tfx.proto import distribution_validator_pb2

    pipeline = _pipeline(tmp_path, "file", LOCAL)
    nodes = {node.id: node for node in pipeline.components}
    statistics = nodes["StatisticsGen"].outputs["statistics"]
    drift = DistributionValidator(statistics=statistics, baseline_statistics=statistics,
                                  config=distribution_validator_pb2.DistributionValidatorConfig())
    pipeline.components = [*pipeline.components, drift]
    with pytest.raises(pytest.fail.Exception) as refused:
        record_outputs_as_airflow_would(pipeline, str(tmp_path / "root"))
    nodes, _, why = str(refused.value).partition(" both output ")
    assert set(nodes.split(" and ")) == {"ExampleValidator", "DistributionValidator"}
    assert why.startswith(f"ExampleAnomalies under the key 'anomalies': TFX's Airflow launcher names both "
                          f"'anomalies:{RUN_ID}'")


def test_the_validation_gates_declared_channel_names_are_its_spec():
    """The pipeline wires and run_summary reads the ValidationGate by names declared beside it; the
    referee is the spec TFX's component decorator builds from the function's parameters
    (tfx/dsl/component/experimental/decorators.py, `component` -> SPEC_CLASS)."""
    from components import validation_gate as gate

    spec = gate.ValidationGate.SPEC_CLASS
    assert {gate.VALIDATED_EXAMPLES, gate.ACCEPTED_STATISTICS} == set(spec.OUTPUTS)
    assert gate.BASELINE_STATISTICS in spec.INPUTS
