"""The validation gate: anomalies read where ExampleValidator writes them (one SchemaDiff.pb per split
folder, written with TFX's own writer_utils.write_anomalies as tfx/components/example_validator/
executor.py Executor._Validate does), and the gate component run by TFX's LocalDagRunner on imported
artifacts. The Anomalies protos are built by the test (a stand-in for TFDV's validate_statistics,
whose output is this same proto). The drift check runs on real TFDV statistics of synthetic spans,
written where StatisticsGen writes them (Split-<name>/FeatureStats.pb, tfx/components/
statistics_gen/stats_artifact_utils.py)."""
import json
import os
import shutil

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import version as tfx_version
from tfx.components.example_validator import executor as example_validator
from tfx.dsl.components.common.importer import Importer
from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.pipeline import Pipeline
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import writer_utils

from ratings import schema
from benchmarks import drift as calibration
from components import validation_gate
from components.validation_gate import ValidationGate, describe_anomalies, read_anomalies
from ratings import synth
from ratings.errors import DataValidationError, DriftError
from pipeline import configs, metadata, pipeline

SPLITS = ["train", "eval"]


def anomalies_proto(**features) -> anomalies_pb2.Anomalies:
    """Anomalies with one entry per feature: {name: (short description, description)}."""
    anomalies = anomalies_pb2.Anomalies()
    for name, (short, long) in features.items():
        anomalies.anomaly_info[name].short_description = short
        anomalies.anomaly_info[name].description = long
    return anomalies


OUT_OF_RANGE = anomalies_proto(rating=("Out-of-range values", "Unexpectedly large value: 9."))
MISSING_COLUMN = anomalies_proto(timestamp=("Column dropped", "Column is completely missing"))
CLEAN = anomalies_pb2.Anomalies()


def write_anomalies(uri: str, by_split) -> standard_artifacts.ExampleAnomalies:
    """An ExampleAnomalies artifact at `uri` with each split's anomalies where ExampleValidator puts them."""
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = uri
    artifact.split_names = artifact_utils.encode_split_names(list(by_split))
    for split, anomalies in by_split.items():
        writer_utils.write_anomalies(os.path.join(artifact_utils.get_split_uri([artifact], split),
                                                  example_validator.DEFAULT_FILE_NAME), anomalies)
    return artifact


def test_describe_names_split_feature_and_both_descriptions():
    anomalies = anomalies_proto(user_id=("Unexpected string values", "Examples contain values missing from the schema"),
                                rating=("Out-of-range values", ""))
    anomalies.dataset_anomaly_info.description = "Low number of examples: 0"
    assert describe_anomalies("eval", anomalies) == [
        "split 'eval', feature 'rating': Out-of-range values",
        "split 'eval', feature 'user_id': Unexpected string values: Examples contain values missing from the schema",
        "split 'eval', dataset: Low number of examples: 0"]
    assert describe_anomalies("eval", CLEAN) == []


def test_read_anomalies_reads_every_split(tmp_path):
    artifact = write_anomalies(str(tmp_path / "anomalies"), {"train": OUT_OF_RANGE, "eval": MISSING_COLUMN})
    assert read_anomalies(artifact) == [
        "split 'train', feature 'rating': Out-of-range values: Unexpectedly large value: 9.",
        "split 'eval', feature 'timestamp': Column dropped: Column is completely missing"]
    assert read_anomalies(write_anomalies(str(tmp_path / "clean"), {"train": CLEAN, "eval": CLEAN})) == []


def examples_from_example_gen(config: configs.PipelineConfig, path) -> str:
    """Examples recorded in the pipeline's store as ExampleGen's driver records them (span and version
    as custom properties, tfx/components/example_gen/driver.py update_output_artifact), in a folder
    in its layout (Split-<name>/ files: the gate copies them, never parses them). The Importer
    (reimport=False) then hands the gate this very artifact, custom properties and all; an Importer
    cannot set them itself, as `span` and `version` are also declared properties of Examples."""
    for split in SPLITS:
        os.makedirs(os.path.join(path, f"Split-{split}"))
        with open(os.path.join(path, f"Split-{split}", "data_tfrecord-00000-of-00001.gz"), "wb") as f:
            f.write(f"{split} examples".encode())
    examples = standard_artifacts.Examples()
    examples.uri = str(path)
    examples.split_names = artifact_utils.encode_split_names(SPLITS)
    examples.set_int_custom_property("span", 3)
    examples.set_int_custom_property("version", 2)
    examples.set_string_custom_property("input_fingerprint", "split:*,num_files:1,total_bytes:42")
    examples.mlmd_artifact.state = metadata_store_pb2.Artifact.LIVE  # published, as a successful run leaves it
    os.makedirs(config.pipeline_root, exist_ok=True)
    store = metadata_store.MetadataStore(
        tfx_metadata.sqlite_metadata_connection_config(config.metadata_file))
    examples.type_id = store.put_artifact_type(examples.artifact_type)
    store.put_artifacts([examples.mlmd_artifact])
    return str(path)


def write_statistics(uri: str, span) -> str:
    """A StatisticsGen-like artifact folder: TFDV's statistics of a span, in every split folder."""
    statistics = calibration.span_statistics(span)
    for split in SPLITS:
        os.makedirs(os.path.join(uri, f"Split-{split}"))
        with open(os.path.join(uri, f"Split-{split}", "FeatureStats.pb"), "wb") as f:
            f.write(statistics.SerializeToString())
    return uri


@pytest.fixture(scope="module")
def synthetic_spans(tmp_path_factory):
    """Statistics folders of two consecutive genuine spans, and of the second with its ratings halved."""
    first, second = calibration.synthetic_spans(synth.SynthSpec(3_000, 100, 300, spans=2))
    folder = tmp_path_factory.mktemp("statistics")
    return {name: write_statistics(str(folder / name), span) for name, span in (
        ("span-1", first), ("span-2", second), ("span-2-halved", calibration.BROKEN[
            "ratings halved (another star scale)"](second.copy())))}


def gate_pipeline(config: configs.PipelineConfig, examples_uri: str, anomalies_uri: str, statistics_uri: str,
                  baseline_uri: str = None, accept_drift: bool = False) -> Pipeline:
    """The gate on imported examples, anomalies, statistics (and baseline statistics), with the
    curated schema and the default drift settings."""
    split_names = artifact_utils.encode_split_names(SPLITS)
    imported = lambda name, uri, artifact_type, **custom: Importer(
        source_uri=uri, artifact_type=artifact_type, properties={"split_names": split_names},
        custom_properties=custom).with_id(name)
    # StatisticsGen's artifacts carry the TFX version, which says how their files are written.
    statistics_of = lambda name, uri: imported(name, uri, standard_artifacts.ExampleStatistics,
                                               tfx_version=tfx_version.__version__)
    examples = imported("examples", examples_uri, standard_artifacts.Examples)
    anomalies = imported("anomalies", anomalies_uri, standard_artifacts.ExampleAnomalies)
    statistics = statistics_of("statistics", statistics_uri)
    schema_dir = os.path.join(config.pipeline_root, "imported-schema")
    os.makedirs(schema_dir, exist_ok=True)
    shutil.copy(schema.SCHEMA_FILE, schema_dir)
    schema_artifact = Importer(source_uri=schema_dir, artifact_type=standard_artifacts.Schema).with_id("schema")
    nodes = [examples, anomalies, statistics, schema_artifact]
    baseline = {}
    if baseline_uri:
        nodes.append(statistics_of("baseline", baseline_uri))
        baseline = {"baseline_statistics": nodes[-1].outputs["result"]}
    gate = ValidationGate(examples=examples.outputs["result"], anomalies=anomalies.outputs["result"],
                          statistics=statistics.outputs["result"], schema=schema_artifact.outputs["result"],
                          drift_comparators=json.dumps(pipeline.drift_comparators(config.drift)),
                          accept_drift=int(accept_drift), **baseline)
    return Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=[*nodes, gate.with_id("ValidationGate")],
        metadata_connection_config=tfx_metadata.sqlite_metadata_connection_config(
            config.metadata_file))


def gate_outputs(config: configs.PipelineConfig):
    """The gate's execution and its output artifacts by key, from ML Metadata."""
    from pipeline import run_summary

    store = metadata.connect(config)
    [execution] = [e for e in store.get_executions() if run_summary.node_name(store, e.id) == "ValidationGate"]
    return execution, run_summary._outputs(store, execution.id)


def test_anomalies_fail_the_run_naming_each(tmp_path, synthetic_spans):
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))
    anomalies = write_anomalies(str(tmp_path / "anomalies"), {"train": OUT_OF_RANGE, "eval": MISSING_COLUMN})
    with pytest.raises(DataValidationError) as failure:
        LocalDagRunner().run(
            gate_pipeline(config, examples_from_example_gen(config, tmp_path / "examples"), anomalies.uri,
                          synthetic_spans["span-2"], synthetic_spans["span-1"]))
    assert str(failure.value) == (
        "data validation found 2 anomalies: "
        "split 'train', feature 'rating': Out-of-range values: Unexpectedly large value: 9.; "
        "split 'eval', feature 'timestamp': Column dropped: Column is completely missing")
    # TFX made the output folder before the gate ran; the gate copied nothing into it.
    assert [files for _, _, files in os.walk(os.path.join(config.pipeline_root, "ValidationGate",
                                                          "validated_examples")) if files] == []


def test_clean_examples_are_passed_on_as_a_copy_with_splits_span_and_version(tmp_path, synthetic_spans):
    """The first run (no accepted statistics yet: no baseline) passes, drift unchecked."""
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))
    examples = examples_from_example_gen(config, tmp_path / "examples")
    anomalies = write_anomalies(str(tmp_path / "anomalies"), {"train": CLEAN, "eval": CLEAN})
    LocalDagRunner().run(gate_pipeline(config, examples, anomalies.uri, synthetic_spans["span-2"]))
    store = metadata.connect(config, readonly=False)
    examples_type = store.get_artifact_type(standard_artifacts.Examples.TYPE_NAME)
    [validated] = [artifact_utils.deserialize_artifact(examples_type, a)
                   for a in store.get_artifacts_by_type(standard_artifacts.Examples.TYPE_NAME)
                   if a.uri != examples]
    assert validated.uri.startswith(os.path.join(config.pipeline_root, "ValidationGate", "validated_examples"))
    assert artifact_utils.decode_split_names(validated.split_names) == SPLITS
    assert (validated.get_int_custom_property("span"), validated.get_int_custom_property("version"),
            validated.get_string_custom_property("input_fingerprint")) == (3, 2, "split:*,num_files:1,total_bytes:42")
    for split in SPLITS:
        [name] = os.listdir(artifact_utils.get_split_uri([validated], split))
        with open(os.path.join(artifact_utils.get_split_uri([validated], split), name), "rb") as f:
            assert f.read() == f"{split} examples".encode()
    execution, outputs = gate_outputs(config)
    accepted = outputs["accepted_statistics"]
    assert (accepted.get_int_custom_property(validation_gate.EXAMPLES_ID),
            accepted.get_string_custom_property(validation_gate.DRIFT),
            accepted.get_int_custom_property(validation_gate.DRIFT_ACCEPTED)) == (
        store.get_artifacts_by_uri(examples)[0].id, "[]", 0)
    assert accepted.get_int_custom_property(validation_gate.SPAN) == 3
    assert validation_gate.BASELINE_SPAN not in accepted.mlmd_artifact.custom_properties


def test_drift_past_a_threshold_fails_the_run_naming_feature_distance_and_threshold(tmp_path, synthetic_spans):
    """Span 2 with its ratings halved, against span 1 as the last accepted: refused, nothing copied."""
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))
    anomalies = write_anomalies(str(tmp_path / "anomalies"), {"train": CLEAN, "eval": CLEAN})
    with pytest.raises(DriftError) as failure:
        LocalDagRunner().run(gate_pipeline(
            config, examples_from_example_gen(config, tmp_path / "examples"), anomalies.uri,
            synthetic_spans["span-2-halved"], synthetic_spans["span-1"]))
    assert str(failure.value).startswith(
        "data drift from the last accepted examples: feature 'rating': Jensen-Shannon divergence 0.")
    assert str(failure.value).endswith(
        ", above the threshold 0.15 (movierec run --accept-drift takes it on purpose)")
    assert [files for _, _, files in os.walk(os.path.join(config.pipeline_root, "ValidationGate")) if files] == []


def test_genuine_drift_passes_and_is_recorded(tmp_path, synthetic_spans):
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))
    anomalies = write_anomalies(str(tmp_path / "anomalies"), {"train": CLEAN, "eval": CLEAN})
    LocalDagRunner().run(gate_pipeline(
        config, examples_from_example_gen(config, tmp_path / "examples"), anomalies.uri,
        synthetic_spans["span-2"], synthetic_spans["span-1"]))
    _, outputs = gate_outputs(config)
    drift = json.loads(outputs["accepted_statistics"].get_string_custom_property(validation_gate.DRIFT))
    assert [(d["feature"], d["exceeded"]) for d in drift] == [("rating", False), ("user_id", False)]
    assert outputs["accepted_statistics"].get_int_custom_property(validation_gate.DRIFT_ACCEPTED) == 0


def test_accept_drift_takes_the_span_and_ml_metadata_records_it(tmp_path, synthetic_spans):
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))
    anomalies = write_anomalies(str(tmp_path / "anomalies"), {"train": CLEAN, "eval": CLEAN})
    LocalDagRunner().run(gate_pipeline(
        config, examples_from_example_gen(config, tmp_path / "examples"), anomalies.uri,
        synthetic_spans["span-2-halved"], synthetic_spans["span-1"], accept_drift=True))
    execution, outputs = gate_outputs(config)
    assert execution.custom_properties["accept_drift"].int_value == 1
    accepted = outputs["accepted_statistics"]
    assert accepted.get_int_custom_property(validation_gate.DRIFT_ACCEPTED) == 1
    [rating] = [validation_gate.Drift(**d) for d in json.loads(accepted.get_string_custom_property(
        validation_gate.DRIFT)) if d["feature"] == "rating"]
    assert rating.exceeded and rating.value > 0.5 and rating.threshold == 0.15
    assert os.listdir(outputs["validated_examples"].uri)  # the examples went on to training
