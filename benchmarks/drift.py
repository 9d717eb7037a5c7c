"""Drift between spans: TFDV's distances on genuine span-to-span steps and on broken spans.

    python -m benchmarks.drift [--data data/movielens-100k]

Where the ValidationGate's default drift thresholds (pipeline/configs.py, DriftConfig) come from.
Each replay is cut into spans as a user would cut it (`movierec data split-spans` by week and by
month, `movierec data synth --spans K`); every span is compared with the span before it, and a
broken copy of it (a defaulted, halved or doubled rating column, one user's ratings only, ...)
with the same baseline. The statistics are TFDV's, of the rows ExampleGen's hash split puts in a
span's train split (what the gate compares), and the distances are TFDV's own
(`validate_statistics` with the previous statistics, through the gate's `check_drift`):

- rating, Jensen-Shannon divergence over TFDV's standard histogram (what the gate uses) and over
  its quantiles histogram;
- rating as categorical: L-infinity distance over the rating values (TFDV computes value counts
  only for string / categorical features, so the ratings are given as strings here);
- user_id and movie_id: L-infinity distance (the largest change in one ID's share of the ratings);
- the number of examples as a ratio of the baseline's.

Prints one row per replay and case (min-max over the span steps) and the verdict of the default
settings: how many steps they refuse; then the genuine steps of spans too small to calibrate on
(MovieLens-100K by day). Takes ~4 minutes on 2 cores.
"""
import argparse
import dataclasses
import os
import pathlib
import tempfile
from typing import Callable, Dict, List

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow_data_validation as tfdv  # noqa: E402
from tabulate import tabulate  # noqa: E402
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2  # noqa: E402

from ratings import schema  # noqa: E402
from components.example_gen.executor import Rows, SplitLayout  # noqa: E402
from components.validation_gate import FEATURES, check_drift  # noqa: E402
from ratings import features, spans, synth  # noqa: E402
from pipeline import configs  # noqa: E402
from pipeline.pipeline import drift_comparators  # noqa: E402

Statistics = statistics_pb2.DatasetFeatureStatisticsList
# Broken copies of a span, each a bug an upstream export could make while still meeting the schema.
BROKEN: Dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "rating defaulted to 3": lambda span: span.assign(rating=np.float32(3.0)),
    "rating defaulted to the schema minimum (0.5)": lambda span: span.assign(rating=np.float32(0.5)),
    "ratings halved (another star scale)": lambda span: span.assign(rating=span.rating / 2),
    "ratings doubled, clipped to 5": lambda span: span.assign(rating=np.minimum(span.rating * 2, 5)),
    "one user's ratings only": lambda span: span[span.user_id == span.user_id.value_counts().index[0]],
}
# Also measured, not required of the defaults: the rating distribution is what the check sees, and
# these move it less (an inverted scale on near-symmetric ratings), or not at all (a truncated export).
MEASURED_ONLY: Dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "ratings inverted (6 - r)": lambda span: span.assign(rating=6 - span.rating),
    "a 5% sample of the span": lambda span: span.sample(frac=0.05, random_state=0),
}
GENUINE = "genuine (span vs the span before)"
COLUMNS = ("rating JSD", "rating JSD (quantiles)", "rating L-inf (as categories)", "user_id L-inf",
           "movie_id L-inf", "examples ratio")
# Every distance at an unreachable threshold: measured, never exceeded.
MEASURE = {FEATURES: {features.RATING: {"jensen_shannon_divergence": {"threshold": 1.0}},
                      features.USER_ID: {"infinity_norm": {"threshold": 1.0}},
                      features.MOVIE_ID: {"infinity_norm": {"threshold": 1.0}}}}
QUANTILES = {FEATURES: {features.RATING: {"jensen_shannon_divergence": {
    "threshold": 1.0, "source": {"type": "QUANTILES"}}}}}


def read_span(path: pathlib.Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={features.USER_ID: str, features.MOVIE_ID: str})
    return frame.astype({features.RATING: np.float32})


def train_split(span: pd.DataFrame, config: configs.PipelineConfig = configs.PipelineConfig()) -> pd.DataFrame:
    """The rows ExampleGen's hash split puts in the train split (by (user, movie) pair)."""
    rows = Rows("", 0, np.arange(len(span)), span.user_id.to_numpy(object), span.movie_id.to_numpy(object),
                span.rating.to_numpy(np.float32), span.timestamp.to_numpy(np.int64))
    layout = SplitLayout(["train", "eval"], [config.train_buckets, config.train_buckets + config.eval_buckets])
    return span[layout.partitions(rows) == 0].reset_index(drop=True)


def span_statistics(span: pd.DataFrame) -> Statistics:
    """TFDV's statistics of a span's train split, as StatisticsGen computes them (default options)."""
    return tfdv.generate_statistics_from_dataframe(train_split(span)[list(features.RATINGS_COLUMNS)])


def time_spans(ratings: pathlib.Path, by: str) -> List[pd.DataFrame]:
    """The spans `movierec data split-spans --by <by>` writes, oldest first."""
    with tempfile.TemporaryDirectory() as dest:
        count = spans.split_spans(ratings, pathlib.Path(dest), by)
        return [read_span(pathlib.Path(dest, spans.SPAN_FOLDER.format(n), features.RATINGS_FILE))
                for n in sorted(count)]


def synthetic_spans(spec: synth.SynthSpec) -> List[pd.DataFrame]:
    """The spans `movierec data synth --spans K` writes, oldest first."""
    with tempfile.TemporaryDirectory() as dest:
        synth.synthesize(spec, pathlib.Path(dest))
        return [read_span(pathlib.Path(dest, spans.SPAN_FOLDER.format(n), features.RATINGS_FILE))
                for n in range(1, spec.spans + 1)]


def _curated_schema() -> schema_pb2.Schema:
    return tfdv.load_schema_text(str(schema.SCHEMA_FILE))


def distances(span: pd.DataFrame, statistics: Statistics, baseline_span: pd.DataFrame,
              baseline: Statistics) -> Dict[str, float]:
    """Every distance of COLUMNS between a span and its baseline (with their statistics)."""
    curated = _curated_schema()
    measured = {(d.feature, d.distance): d.value for d in check_drift(statistics, baseline, curated, MEASURE)}
    [quantiles] = check_drift(statistics, baseline, curated, QUANTILES)
    as_categories = [tfdv.generate_statistics_from_dataframe(
        train_split(frame)[[features.RATING]].astype(str)) for frame in (span, baseline_span)]
    categorical = tfdv.infer_schema(as_categories[1])
    [by_value] = check_drift(*as_categories, categorical,
                             {FEATURES: {features.RATING: {"infinity_norm": {"threshold": 1.0}}}})
    return dict(zip(COLUMNS, (
        measured[(features.RATING, "Jensen-Shannon divergence")], quantiles.value, by_value.value,
        measured[(features.USER_ID, "L-infinity distance")], measured[(features.MOVIE_ID, "L-infinity distance")],
        statistics.datasets[0].num_examples / baseline.datasets[0].num_examples)))


def refused(statistics: Statistics, baseline: Statistics, drift: configs.DriftConfig) -> bool:
    """What the ValidationGate decides with these settings."""
    return any(d.exceeded for d in check_drift(statistics, baseline, _curated_schema(), drift_comparators(drift)))


@dataclasses.dataclass
class Case:
    """The distances of one case over a replay's span steps, and how many the settings refused."""
    values: Dict[str, List[float]] = dataclasses.field(default_factory=lambda: {c: [] for c in COLUMNS})
    refused: int = 0
    steps: int = 0

    def add(self, measured: Dict[str, float], was_refused: bool) -> None:
        for column, value in measured.items():
            self.values[column].append(value)
        self.refused += was_refused
        self.steps += 1

    def range(self, column: str) -> str:
        values = self.values[column]
        return f"{min(values):.4f}-{max(values):.4f}" if values else "-"


def measure_replay(parts: List[pd.DataFrame], drift: configs.DriftConfig, broken: bool = True) -> Dict[str, Case]:
    """{case: Case} over the span steps 2..N of one replay, broken cases included unless `broken` is False."""
    statistics = [span_statistics(span) for span in parts]
    corruptions = {**BROKEN, **MEASURED_ONLY} if broken else {}
    cases = {GENUINE: Case(), **{name: Case() for name in corruptions}}
    for i in range(1, len(parts)):
        baseline_span, baseline = parts[i - 1], statistics[i - 1]
        cases[GENUINE].add(distances(parts[i], statistics[i], baseline_span, baseline),
                           refused(statistics[i], baseline, drift))
        for name, corrupt in corruptions.items():
            broken = corrupt(parts[i].copy())
            broken_statistics = span_statistics(broken)
            cases[name].add(distances(broken, broken_statistics, baseline_span, baseline),
                            refused(broken_statistics, baseline, drift))
    return cases


def _sample_spans(ratings: pathlib.Path, by: str) -> List[pd.DataFrame]:
    """The tests' sample (the first 3,000 ratings) cut into spans."""
    with tempfile.TemporaryDirectory() as folder:
        sample = pathlib.Path(folder, features.RATINGS_FILE)
        sample.write_text("".join(ratings.open().readlines()[:3001]))
        return time_spans(sample, by)


def small_spans(data: pathlib.Path) -> Dict[str, List[pd.DataFrame]]:
    """Spans too small for a distribution to mean much; measured, not calibrated on."""
    ratings = data / features.RATINGS_FILE
    return {"MovieLens-100K by day": time_spans(ratings, "day"),
            "its first 3,000 ratings by week": _sample_spans(ratings, "week")}


def replays(data: pathlib.Path) -> Dict[str, List[pd.DataFrame]]:
    """The genuine span sequences the defaults are calibrated on."""
    ratings = data / features.RATINGS_FILE
    return {
        "MovieLens-100K by week": time_spans(ratings, "week"),
        "MovieLens-100K by month": time_spans(ratings, "month"),
        "its first 3,000 ratings by month (the tests' spans)": _sample_spans(ratings, "month"),
        "synth 100k ratings, 943 users, 1,682 movies, 8 spans":
            synthetic_spans(synth.SynthSpec(100_000, 943, 1682, spans=8)),
        "synth 100k ratings, 943 users, 1,682 movies, 30 spans":
            synthetic_spans(synth.SynthSpec(100_000, 943, 1682, spans=30)),
        "synth 3,000 ratings, 100 users, 300 movies, 8 spans":
            synthetic_spans(synth.SynthSpec(3_000, 100, 300, spans=8)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path("data/movielens-100k"))
    args = parser.parse_args()
    drift = configs.DriftConfig()
    rows, totals = [], {}
    for replay, parts in replays(args.data).items():
        sizes = [len(span) for span in parts]
        for name, case in measure_replay(parts, drift).items():
            rows.append([replay if name == GENUINE else "", f"{len(parts)} spans of {min(sizes):,}-{max(sizes):,}"
                         if name == GENUINE else "", name, *(case.range(c) for c in COLUMNS),
                         f"{case.refused}/{case.steps}"])
            total = totals.setdefault(name, Case())
            for column in COLUMNS:
                total.values[column] += case.values[column]
            total.refused, total.steps = total.refused + case.refused, total.steps + case.steps
    settings = ", ".join(f"{f.name} {getattr(drift, f.name)}" for f in dataclasses.fields(drift) if f.name != "accept")
    print(tabulate(rows, headers=["replay", "spans (ratings)", "case", *COLUMNS, "refused"], tablefmt="github"))
    print(f"\nAll replays (min-max over every span step); refused by the defaults ({settings}):\n")
    print(tabulate([[name, *(total.range(c) for c in COLUMNS), f"{total.refused}/{total.steps}"]
                    for name, total in totals.items()], headers=["case", *COLUMNS, "refused"], tablefmt="github"))
    print("\nSpans too small to calibrate on (genuine steps only):\n")
    small = []
    for replay, parts in small_spans(args.data).items():
        sizes = [len(span) for span in parts]
        case = measure_replay(parts, drift, broken=False)[GENUINE]
        small.append([replay, f"{len(parts)} spans of {min(sizes):,}-{max(sizes):,}",
                      *(case.range(c) for c in COLUMNS), f"{case.refused}/{case.steps}"])
    print(tabulate(small, headers=["replay", "spans (ratings)", *COLUMNS, "refused"], tablefmt="github"))


if __name__ == "__main__":
    main()
