"""The request metrics tensorflow_model_server exports, with its names, labels and page format.

Definitions: servables/tensorflow/util.cc (/tensorflow/serving/request_count by model_name and
status; request_latency by model_name, API, entrypoint; runtime_latency by model_name, API,
runtime; histograms in microseconds with Buckets::Exponential(10, 1.8, 33)). Page:
util/prometheus_exporter.cc (metric names with every character outside [a-zA-Z0-9_] replaced by
':', "# TYPE" lines, cumulative `_bucket{...,le="..."}`, `_sum`, `_count`).
"""
import collections
import threading
from typing import Dict, List, Tuple

REQUEST_COUNT = "/tensorflow/serving/request_count"
REQUEST_LATENCY = "/tensorflow/serving/request_latency"
RUNTIME_LATENCY = "/tensorflow/serving/runtime_latency"
# Buckets::Exponential(10, 1.8, 33): 10 * 1.8^i for i in 0..31, then +Inf.
BUCKET_LIMITS = [10 * 1.8 ** i for i in range(32)]
LABELS = {REQUEST_COUNT: ("model_name", "status"), REQUEST_LATENCY: ("model_name", "API", "entrypoint"),
          RUNTIME_LATENCY: ("model_name", "API", "runtime")}


def prometheus_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else ":" for c in name)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Dict[Tuple, int] = collections.Counter()
        self._histograms: Dict[str, Dict[Tuple, List]] = {REQUEST_LATENCY: {}, RUNTIME_LATENCY: {}}

    def count_request(self, model_name: str, status: str) -> None:
        with self._lock:
            self._counts[(model_name, status)] += 1

    def observe(self, metric: str, labels: Tuple[str, ...], microseconds: float) -> None:
        with self._lock:
            cell = self._histograms[metric].setdefault(labels, [[0] * (len(BUCKET_LIMITS) + 1), 0.0])
            bucket = next((i for i, limit in enumerate(BUCKET_LIMITS) if microseconds < limit), len(BUCKET_LIMITS))
            cell[0][bucket] += 1
            cell[1] += microseconds

    def page(self) -> str:
        def labels(metric, values, extra=""):
            text = ",".join(f'{name}="{value}"' for name, value in zip(LABELS[metric], values))
            return text + ("," if text and extra else "") + extra

        with self._lock:
            lines = [f"# TYPE {prometheus_name(REQUEST_COUNT)} counter"]
            lines += [f"{prometheus_name(REQUEST_COUNT)}{{{labels(REQUEST_COUNT, key)}}} {count}"
                      for key, count in sorted(self._counts.items())]
            for metric, cells in self._histograms.items():
                name = prometheus_name(metric)
                lines.append(f"# TYPE {name} histogram")
                for key, (buckets, total) in sorted(cells.items()):
                    cumulative = 0
                    for i, count in enumerate(buckets):
                        cumulative += count
                        limit = _number(BUCKET_LIMITS[i]) if i < len(BUCKET_LIMITS) else "+Inf"
                        le = 'le="' + limit + '"'
                        lines.append(f"{name}_bucket{{{labels(metric, key, le)}}} {cumulative}")
                    lines.append(f"{name}_sum{{{labels(metric, key)}}} {_number(total)}")
                    lines.append(f"{name}_count{{{labels(metric, key)}}} {cumulative}")
        return "\n".join(lines) + "\n"
