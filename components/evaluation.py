"""TFMA's evaluation, read back: the metric names our eval config gives, and the metrics per
slice and model that the rating gate, the baselines gate and the run summary read.
"""
from typing import Dict

import tensorflow_model_analysis as tfma

RMSE = "root_mean_squared_error"
MAE = "mean_absolute_error"
EXAMPLE_COUNT = "example_count"
# Model names in the metrics: TFMA names them candidate and baseline when a baseline is given.
CANDIDATE, BASELINE = "candidate", "baseline"
OVERALL = ""


def slice_name(slice_key) -> str:
    """"user_activity=21-50" for a TFMA slice key; "" (OVERALL) for the overall slice."""
    return ", ".join(f"{key.column}={key.bytes_value.decode() or key.int64_value}"
                     for key in slice_key.single_slice_keys)


def load(evaluation_uri: str) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{slice name: {model: {metric: value}}} of the candidate and (if any) the baseline model."""
    by_slice = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        models = by_slice.setdefault(slice_name(slice_metrics.slice_key), {})
        for entry in slice_metrics.metric_keys_and_values:
            if entry.key.is_diff or entry.key.name not in (RMSE, MAE, EXAMPLE_COUNT):
                continue
            model = BASELINE if entry.key.model_name == BASELINE else CANDIDATE
            models.setdefault(model, {})[entry.key.name] = entry.value.double_value.value
    return by_slice
