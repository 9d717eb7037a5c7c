"""The drift check the ValidationGate makes, on real TFDV statistics of MovieLens-100K spans (the
whole dataset, fetched once a session: an e2e calibration, not a unit test).

Each span is cut as `movierec data split-spans` cuts it; the statistics are TFDV's of the rows
ExampleGen's hash split puts in the span's train split (benchmarks/drift.py, which prints the
calibration table), and the distances are TFDV's own `validate_statistics` with the previous
statistics. The referees: every genuine span-to-span step of the real history must pass the default
settings, and planted breakages of real spans (the benchmark's broken cases) must be refused.
"""
import math

import pytest
import tensorflow_data_validation as tfdv

from ratings import schema
from benchmarks import drift as calibration
from components.validation_gate import check_drift
from ratings import features
from pipeline import configs
from pipeline.pipeline import drift_comparators

DEFAULTS = drift_comparators(configs.DriftConfig())


@pytest.fixture(scope="module")
def curated_schema():
    return tfdv.load_schema_text(str(schema.SCHEMA_FILE))


@pytest.fixture(scope="module")
def by_month(movielens_100k):
    parts = calibration.time_spans(movielens_100k / features.RATINGS_FILE, "month")
    return parts, [calibration.span_statistics(span) for span in parts]


@pytest.mark.parametrize("by, steps", [("week", 31), ("month", 7)])
def test_every_genuine_step_of_a_time_replay_passes_the_defaults(movielens_100k, by_month, curated_schema, by, steps):
    parts, statistics = by_month if by == "month" else (None, [
        calibration.span_statistics(span)
        for span in calibration.time_spans(movielens_100k / features.RATINGS_FILE, by)])
    checked = [check_drift(statistics[i], statistics[i - 1], curated_schema, DEFAULTS)
               for i in range(1, len(statistics))]
    assert len(checked) == steps
    # Both default checks measured each step (not skipped), and none past its threshold.
    assert all({(d.feature, d.distance) for d in drift} == {("rating", "Jensen-Shannon divergence"),
                                                           ("user_id", "L-infinity distance")} for drift in checked)
    assert [str(d) for drift in checked for d in drift if d.exceeded] == []


@pytest.mark.parametrize("case, message", [
    ("rating defaulted to 3", "feature 'rating': Jensen-Shannon divergence 1.0000, above the threshold 0.15"),
    ("rating defaulted to the schema minimum (0.5)",
     "feature 'rating': Jensen-Shannon divergence 1.0000, above the threshold 0.15"),
    ("ratings halved (another star scale)", "feature 'rating': Jensen-Shannon divergence 0.8"),
    ("ratings doubled, clipped to 5", "feature 'rating': Jensen-Shannon divergence 0.4"),
    # (a single user's ratings may move the rating distribution past its threshold too)
    ("one user's ratings only", "feature 'user_id': L-infinity distance "),
])
def test_a_broken_span_is_refused_naming_the_feature_the_distance_and_the_threshold(by_month, curated_schema,
                                                                                    case, message):
    parts, statistics = by_month
    for month in (2, 5, 8):
        broken = calibration.span_statistics(calibration.BROKEN[case](parts[month - 1].copy()))
        exceeded = [str(d) for d in check_drift(broken, statistics[month - 2], curated_schema, DEFAULTS) if d.exceeded]
        [named] = [line for line in exceeded if line.startswith(message)]
        assert named.endswith(", above the threshold 0.15" if "rating" in message else ", above the threshold 0.7")


def test_span_volume_bounds_are_tfdvs_num_examples_comparator(by_month, curated_schema):
    """Off by default (genuine weeks vary 25-fold); set, a truncated export is refused and the
    monthly history is not."""
    parts, statistics = by_month
    comparators = drift_comparators(configs.DriftConfig(min_examples_ratio=0.2, max_examples_ratio=5.0))
    genuine = [d for i in range(1, len(statistics))
               for d in check_drift(statistics[i], statistics[i - 1], curated_schema, comparators)]
    assert [d.limit for d in genuine if d.feature == "number of examples"] == ["min", "max"] * 7
    assert not [d for d in genuine if d.exceeded]
    truncated = calibration.span_statistics(parts[3].sample(frac=0.05, random_state=0))
    [exceeded] = [d for d in check_drift(truncated, statistics[2], curated_schema, comparators) if d.exceeded]
    ratio = truncated.datasets[0].num_examples / statistics[2].datasets[0].num_examples
    assert str(exceeded) == (f"number of examples: {ratio:.4g} times the last accepted span's, "
                             "below the threshold 0.2")


def test_a_comparison_tfdv_cannot_make_is_refused(by_month, curated_schema):
    """A baseline without user IDs (statistics of another layout): TFDV reports the control data
    missing; the gate refuses rather than silently skipping the check."""
    parts, statistics = by_month
    without_users = tfdv.generate_statistics_from_dataframe(
        calibration.train_split(parts[0])[[features.MOVIE_ID, features.RATING, features.TIMESTAMP]])
    [missing] = [d for d in check_drift(statistics[1], without_users, curated_schema, DEFAULTS) if d.exceeded]
    assert missing.feature == "user_id" and math.isnan(missing.value)
