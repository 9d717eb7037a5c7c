"""The validation gate: anomalies read where ExampleValidator writes them (one SchemaDiff.pb per split
folder, written with TFX's own writer_utils.write_anomalies as tfx/components/example_validator/
executor.py Executor._Validate does), and the gate component run by TFX's LocalDagRunner on imported
artifacts. The Anomalies protos are built by the test (a stand-in for TFDV's validate_statistics,
whose output is this same proto)."""
import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.components.example_validator import executor as example_validator
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import writer_utils

from components.validation_gate import ValidationGate, describe_anomalies, read_anomalies
from movierec.errors import DataValidationError
from pipeline import configs, metadata

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
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_file))
    examples.type_id = store.put_artifact_type(examples.artifact_type)
    store.put_artifacts([examples.mlmd_artifact])
    return str(path)


def gate_pipeline(config: configs.PipelineConfig, examples_uri: str, anomalies_uri: str) -> tfx.dsl.Pipeline:
    """The gate on imported examples and anomalies."""
    split_names = artifact_utils.encode_split_names(SPLITS)
    examples = tfx.dsl.Importer(source_uri=examples_uri, artifact_type=standard_artifacts.Examples,
                                properties={"split_names": split_names}).with_id("examples")
    anomalies = tfx.dsl.Importer(source_uri=anomalies_uri, artifact_type=standard_artifacts.ExampleAnomalies,
                                 properties={"split_names": split_names}).with_id("anomalies")
    gate = ValidationGate(examples=examples.outputs["result"], anomalies=anomalies.outputs["result"])
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=[examples, anomalies, gate.with_id("ValidationGate")],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_file))


def test_anomalies_fail_the_run_naming_each(tmp_path):
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))
    anomalies = write_anomalies(str(tmp_path / "anomalies"), {"train": OUT_OF_RANGE, "eval": MISSING_COLUMN})
    with pytest.raises(DataValidationError) as failure:
        tfx.orchestration.LocalDagRunner().run(
            gate_pipeline(config, examples_from_example_gen(config, tmp_path / "examples"), anomalies.uri))
    assert str(failure.value) == (
        "data validation found 2 anomalies: "
        "split 'train', feature 'rating': Out-of-range values: Unexpectedly large value: 9.; "
        "split 'eval', feature 'timestamp': Column dropped: Column is completely missing")
    # TFX made the output folder before the gate ran; the gate copied nothing into it.
    assert [files for _, _, files in os.walk(os.path.join(config.pipeline_root, "ValidationGate",
                                                          "validated_examples")) if files] == []


def test_clean_examples_are_passed_on_as_a_copy_with_splits_span_and_version(tmp_path):
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"))
    examples = examples_from_example_gen(config, tmp_path / "examples")
    anomalies = write_anomalies(str(tmp_path / "anomalies"), {"train": CLEAN, "eval": CLEAN})
    tfx.orchestration.LocalDagRunner().run(gate_pipeline(config, examples, anomalies.uri))
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
