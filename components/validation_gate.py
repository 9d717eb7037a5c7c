"""A component that stops the run when ExampleValidator found anomalies.

ExampleValidator only records anomalies; on its own, Transform and Trainer would go on to train
(and possibly push) a model on data that broke the schema. Transform is wired after this gate.
"""
import os
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

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
def ValidationGate(anomalies: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleAnomalies]) -> None:
    """Fails the run, naming every anomaly, when the validated data broke the schema."""
    found = read_anomalies(anomalies)
    if found:
        raise DataValidationError(
            f"data validation found {len(found)} anomal{'y' if len(found) == 1 else 'ies'}: "
            + "; ".join(found))
