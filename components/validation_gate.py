"""A component that stops the run when ExampleValidator found anomalies.

ExampleValidator only records anomalies; on its own, Transform and Trainer would go on to train
(and possibly push) a model on data that broke the schema. The gate either fails the run, naming
every anomaly, or passes the examples on as `validated_examples`: everything downstream (and the
rolling window of spans in later runs) reads only data that passed validation.
"""
import os
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import io_utils

from movierec.errors import DataValidationError

ANOMALIES_FILE = "SchemaDiff.pb"


def describe_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> List[str]:
    found = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        what = ": ".join(text for text in (info.short_description, info.description) if text)
        found.append(f"split '{split}', feature '{name}': {what}")
    if anomalies.HasField("dataset_anomaly_info"):
        found.append(f"split '{split}', dataset: {anomalies.dataset_anomaly_info.description}")
    return found


def read_anomalies(artifact: tfx.types.standard_artifacts.ExampleAnomalies) -> List[str]:
    """All anomalies of every split of an ExampleAnomalies artifact, one line each."""
    found = []
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        with tfx.dsl.io.fileio.open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        found += describe_anomalies(split, anomalies)
    return found


@tfx.dsl.components.component
def ValidationGate(
        examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
        anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
        validated_examples: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
) -> None:
    """Fails the run when the data broke the schema; otherwise passes the examples on."""
    found = read_anomalies(anomalies)
    if found:
        raise DataValidationError(
            f"data validation found {len(found)} anomal{'y' if len(found) == 1 else 'ies'}: "
            + "; ".join(found))
    # A copy, not a reference: the output must be readable wherever the pipeline runs.
    io_utils.copy_dir(examples.uri, validated_examples.uri)
    validated_examples.split_names = examples.split_names
    # ExampleGen keeps span, version, payload and file format as custom properties; readers and
    # the span resolver need them on the copy too.
    for key, value in examples.mlmd_artifact.custom_properties.items():
        validated_examples.mlmd_artifact.custom_properties[key].CopyFrom(value)
