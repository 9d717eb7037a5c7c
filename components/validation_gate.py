"""A component that stops the run on data that broke the schema or drifted from the last accepted span.

ExampleValidator only records anomalies; on its own, Transform and Trainer would go on to train
(and possibly push) a model on data that broke the schema. Data can also keep to the schema and
still be wrong: a rating column an upstream bug filled with one value, or ratings on another star
scale. Every later gate compares models on the new data's own eval split, so wrong data makes a
wrong model look right; the only place to stop it is here, by comparing the new examples with the
last ones accepted, as TFX's DistributionValidator does: TFDV's `validate_statistics` with the
previous statistics and drift comparators set in the schema.

The gate either fails the run, naming every anomaly or drift, or passes the examples on as
`validated_examples` and their statistics as `accepted_statistics`: everything downstream (and the
rolling window of spans in later runs) reads only data that passed, and the newest accepted
statistics are the next run's baseline (components/resolvers.py). The first run has no baseline,
and passes.
"""
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

import tensorflow_data_validation as tfdv
from google.protobuf import json_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.components.statistics_gen import stats_artifact_utils
# Not tfx.v1, whose extensions import the Google Cloud clients: seconds on every `movierec run`.
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from ratings.errors import DataValidationError, DriftError

ANOMALIES_FILE = "SchemaDiff.pb"
# The split compared between spans: the larger one (a span's eval split is a fifth of it, so its
# distances are noisier), and present in every layout (hash-split or given train/eval folders).
DRIFT_SPLIT = "train"
# Custom properties of `accepted_statistics`, read by the baseline resolver and the run summary.
EXAMPLES_ID = "examples_id"          # the ExampleGen artifact these statistics describe
SPAN = "span"
DRIFT = "drift"                      # JSON list of Drift measurements against the baseline
DRIFT_ACCEPTED = "drift_accepted"    # 1: past a threshold, accepted on purpose (--accept-drift)
BASELINE_SPAN = "baseline_span"      # the span compared with; absent on cold start and without spans
# The comparator keys of `drift_comparators` (JSON): {"features": {name: tensorflow.metadata
# FeatureComparator as JSON}, "num_examples": NumericValueComparator as JSON}.
FEATURES, NUM_EXAMPLES = "features", "num_examples"

_TYPES = anomalies_pb2.AnomalyInfo.Type
_MEASURED = anomalies_pb2.DriftSkewInfo.Measurement.Type
# What each measurement is called, and the anomaly TFDV reports when it is past its threshold.
_DISTANCES = {
    _MEASURED.JENSEN_SHANNON_DIVERGENCE: ("Jensen-Shannon divergence",
                                          _TYPES.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH),
    _MEASURED.L_INFTY: ("L-infinity distance", _TYPES.COMPARATOR_L_INFTY_HIGH),
    _MEASURED.NORMALIZED_ABSOLUTE_DIFFERENCE: ("normalized absolute difference",
                                               _TYPES.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH),
}
_COMPARATOR_ANOMALIES = frozenset(t for name, t in _TYPES.items() if name.startswith("COMPARATOR_"))
EXAMPLES_RATIO = "number of examples"


@dataclasses.dataclass(frozen=True)
class Drift:
    """One comparison with the baseline: a distance and its threshold (`limit` "max"), or the
    ratio of examples to the baseline's and a bound (`limit` "min" or "max")."""
    feature: str
    distance: str
    value: float
    threshold: float
    exceeded: bool
    limit: str = "max"

    def __str__(self) -> str:
        if self.feature == EXAMPLES_RATIO:
            what = f"number of examples: {self.value:.4g} times the last accepted span's"
        else:
            what = f"feature '{self.feature}': {self.distance} {self.value:.4f}"
        if not self.exceeded:
            return f"{what} (threshold {self.threshold:g})"
        return f"{what}, {'above' if self.limit == 'max' else 'below'} the threshold {self.threshold:g}"


def describe_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> List[str]:
    found = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        what = ": ".join(text for text in (info.short_description, info.description) if text)
        found.append(f"split '{split}', feature '{name}': {what}")
    if anomalies.HasField("dataset_anomaly_info"):
        found.append(f"split '{split}', dataset: {anomalies.dataset_anomaly_info.description}")
    return found


def read_anomalies(artifact: standard_artifacts.ExampleAnomalies) -> List[str]:
    """All anomalies of every split of an ExampleAnomalies artifact, one line each."""
    found = []
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        with fileio.open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        found += describe_anomalies(split, anomalies)
    return found


def drift_schema(schema: schema_pb2.Schema, comparators: Dict[str, Any]) -> schema_pb2.Schema:
    """A copy of the schema with the drift comparators set, where TFDV reads them."""
    with_drift = schema_pb2.Schema()
    with_drift.CopyFrom(schema)
    features = {feature.name: feature for feature in with_drift.feature}
    for name, comparator in comparators.get(FEATURES, {}).items():
        if name not in features:
            raise ValueError(f"drift comparator for feature {name!r}, which the schema does not have")
        json_format.ParseDict(comparator, features[name].drift_comparator)
    if comparators.get(NUM_EXAMPLES):
        json_format.ParseDict(comparators[NUM_EXAMPLES], with_drift.dataset_constraints.num_examples_drift_comparator)
    return with_drift


def check_drift(statistics: statistics_pb2.DatasetFeatureStatisticsList,
                baseline: statistics_pb2.DatasetFeatureStatisticsList,
                schema: schema_pb2.Schema, comparators: Dict[str, Any]) -> List[Drift]:
    """Every comparison of `statistics` with `baseline` that `comparators` set, by TFDV."""
    anomalies = tfdv.validate_statistics(statistics, drift_schema(schema, comparators),
                                         previous_statistics=baseline)
    past = {(name, reason.type) for name, info in anomalies.anomaly_info.items() for reason in info.reason
            if reason.type in _COMPARATOR_ANOMALIES}
    found = []
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for measurement in info.drift_measurements:
            distance, anomaly = _DISTANCES[measurement.type]
            found.append(Drift(name, distance, measurement.value, measurement.threshold, (name, anomaly) in past))
            past.discard((name, anomaly))
    # Comparisons TFDV could not make (a feature missing from one side) are refused as they are.
    for name, anomaly in sorted(past):
        [reason] = [r for r in anomalies.anomaly_info[name].reason if r.type == anomaly]
        found.append(Drift(name, reason.description, float("nan"), float("nan"), True))
    num_examples = comparators.get(NUM_EXAMPLES) or {}
    if num_examples:
        ratio = statistics.datasets[0].num_examples / max(baseline.datasets[0].num_examples, 1)
        reasons = {reason.type for reason in anomalies.dataset_anomaly_info.reason}
        for limit, key, anomaly in (("min", "min_fraction_threshold", _TYPES.COMPARATOR_LOW_NUM_EXAMPLES),
                                    ("max", "max_fraction_threshold", _TYPES.COMPARATOR_HIGH_NUM_EXAMPLES)):
            if key in num_examples:
                found.append(Drift(EXAMPLES_RATIO, "ratio", ratio, num_examples[key], anomaly in reasons, limit))
    return found


def _load(artifact: standard_artifacts.ExampleStatistics) -> statistics_pb2.DatasetFeatureStatisticsList:
    return stats_artifact_utils.load_statistics(artifact, DRIFT_SPLIT).proto()


def _span(artifact) -> Optional[int]:
    """The span number of span-<N>/ data (`data split-spans` counts from 1); None for data without
    spans, to which ExampleGen gives span 0."""
    span = artifact.get_int_custom_property(SPAN) if SPAN in artifact.mlmd_artifact.custom_properties else 0
    return span or None


# The gate's channel names (its parameters below are the spec TFX builds): the pipeline wires and
# run_summary reads them by these names; tests/unit/pipeline/test_output_names.py checks they are the spec's.
VALIDATED_EXAMPLES, ACCEPTED_STATISTICS = "validated_examples", "accepted_statistics"
BASELINE_STATISTICS = "baseline_statistics"


@component
def ValidationGate(
        examples: InputArtifact[standard_artifacts.Examples],
        anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
        statistics: InputArtifact[standard_artifacts.ExampleStatistics],
        schema: InputArtifact[standard_artifacts.Schema],
        validated_examples: OutputArtifact[standard_artifacts.Examples],
        accepted_statistics: OutputArtifact[standard_artifacts.ExampleStatistics],
        baseline_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
        drift_comparators: Parameter[str] = "{}",
        accept_drift: Parameter[int] = 0,
) -> None:
    """Fails the run when the data broke the schema, or drifted past a threshold from the last
    accepted span (`baseline_statistics`) without `accept_drift`; otherwise passes the examples on."""
    found = read_anomalies(anomalies)
    if found:
        raise DataValidationError(
            f"data validation found {len(found)} anomal{'y' if len(found) == 1 else 'ies'}: "
            + "; ".join(found))
    drift, exceeded = [], []
    if baseline_statistics is not None:
        # Read as ExampleValidator reads it (tfx/components/example_validator/executor.py).
        schema_proto = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
        drift = check_drift(_load(statistics), _load(baseline_statistics), schema_proto, json.loads(drift_comparators))
        exceeded = [d for d in drift if d.exceeded]
        baseline_span = _span(baseline_statistics)
        if exceeded and not accept_drift:
            since = (f"span {baseline_span}, the last accepted" if baseline_span is not None
                     else "the last accepted examples")
            raise DriftError(f"data drift from {since}: " + "; ".join(map(str, exceeded))
                             + " (movierec run --accept-drift takes it on purpose)")
        if baseline_span is not None:
            accepted_statistics.set_int_custom_property(BASELINE_SPAN, baseline_span)
    # Copies, not references: the outputs must be readable wherever the pipeline runs.
    io_utils.copy_dir(examples.uri, validated_examples.uri)
    validated_examples.split_names = examples.split_names
    # ExampleGen keeps span, version, payload and file format as custom properties; readers and
    # the span resolver need them on the copy too.
    for key, value in examples.mlmd_artifact.custom_properties.items():
        validated_examples.mlmd_artifact.custom_properties[key].CopyFrom(value)
    io_utils.copy_dir(statistics.uri, accepted_statistics.uri)
    accepted_statistics.split_names = statistics.split_names
    accepted_statistics.set_int_custom_property(EXAMPLES_ID, examples.id)
    if _span(examples) is not None:
        accepted_statistics.set_int_custom_property(SPAN, _span(examples))
    accepted_statistics.set_string_custom_property(DRIFT, json.dumps([dataclasses.asdict(d) for d in drift]))
    accepted_statistics.set_int_custom_property(DRIFT_ACCEPTED, int(bool(exceeded)))
