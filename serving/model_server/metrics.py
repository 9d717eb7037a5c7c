"""The request metrics tensorflow_model_server exports, with its names, labels and page format.

Definitions: servables/tensorflow/util.cc (/tensorflow/serving/request_count by model_name and
status; request_latency by model_name, API, entrypoint; runtime_latency by model_name, API,
runtime; histograms of whole microseconds with Buckets::Exponential(10, 1.8, 33)). Buckets: TF's
monitoring ExponentialBuckets, 33 limits 10, 10*1.8, ... multiplied step by step, then DBL_MAX
(ExplicitBuckets appends it); a value goes to the first limit above it (Histogram::Add,
upper_bound). Page: util/prometheus_exporter.cc (metric names with every character outside
[a-zA-Z0-9_] replaced by ':', label names with every character outside [a-zA-Z0-9] replaced by
'_', label values with \\ and " escaped, "# TYPE" lines, cumulative `_bucket{...,le="..."}` with
the limits and `_sum` written by absl::StrCat - six significant digits, as printf's %g - and the
last bucket as le="+Inf"; counters with %d).
"""
import bisect
import collections
import re
import threading
from typing import Dict, List, Tuple

REQUEST_COUNT = "/tensorflow/serving/request_count"
REQUEST_LATENCY = "/tensorflow/serving/request_latency"
RUNTIME_LATENCY = "/tensorflow/serving/runtime_latency"


def exponential_buckets(scale: float, growth_factor: float, count: int) -> list:
    """TF monitoring ComputeBucketLimits: bound = scale, then bound *= growth_factor, `count` times."""
    limits, bound = [], scale
    for _ in range(count):
        limits.append(bound)
        bound *= growth_factor
    return limits


BUCKET_LIMITS = exponential_buckets(10, 1.8, 33)  # the +Inf bucket (DBL_MAX) comes after them
LABELS = {REQUEST_COUNT: ("model_name", "status"), REQUEST_LATENCY: ("model_name", "API", "entrypoint"),
          RUNTIME_LATENCY: ("model_name", "API", "runtime")}


def prometheus_name(name: str) -> str:
    """GetPrometheusMetricName: [^a-zA-Z0-9_] -> ':', a leading digit gets a '_'."""
    name = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return "_" + name if name[:1].isdigit() else name


def label_name(name: str) -> str:
    """SanatizeLabelName: [^a-zA-Z0-9] -> '_', a leading digit gets a '_'."""
    name = re.sub(r"[^a-zA-Z0-9]", "_", name)
    return "_" + name if name[:1].isdigit() else name


def label_value(value: str) -> str:
    """SanitizeLabelValue: backslash and double quote escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _number(value: float) -> str:
    """absl::StrCat of a double: SixDigitsToBuffer, "%g"."""
    return "%g" % value


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
            microseconds = int(microseconds)  # Env::NowMicros() differences: whole microseconds
            cell = self._histograms[metric].setdefault(labels, [[0] * (len(BUCKET_LIMITS) + 1), 0.0])
            bucket = bisect.bisect_right(BUCKET_LIMITS, microseconds)
            cell[0][bucket] += 1
            cell[1] += microseconds

    def page(self) -> str:
        def labels(metric, values, extra=""):
            text = ",".join(f'{label_name(name)}="{label_value(value)}"' for name, value in zip(LABELS[metric], values))
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
