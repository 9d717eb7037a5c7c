"""`movierec data synth`: exact sizes, valid canonical files, MovieLens-like skew, reproducible.

Its planted tastes and drift: test_synth_world.py."""
import collections
import dataclasses

import numpy as np
import pytest

from ratings import features, records, side_tables
from ratings import synth
from ratings.errors import DataError
from tests.cli import movierec


def read(path):
    with open(path, "rb") as f:
        return list(records.read_ratings(f, str(path)))


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    dest = tmp_path_factory.mktemp("synth")
    counts = synth.synthesize(synth.SynthSpec(ratings=20_000, users=300, movies=800, seed=3, spans=4), dest)
    return dest, counts


def test_exact_size_distinct_pairs_and_valid_files(spans):
    dest, counts = spans
    ratings = [r for span in range(1, 5) for r in read(dest / f"span-{span}" / features.RATINGS_FILE)]
    assert len(ratings) == sum(counts.values()) == 20_000
    assert [len(read(dest / f"span-{n}" / features.RATINGS_FILE)) for n in range(1, 5)] == list(counts.values())
    assert len({(r.user_id, r.movie_id) for r in ratings}) == len(ratings)
    assert {r.rating for r in ratings} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(side_tables.read_movies(str(dest / features.MOVIES_FILE))) == 800
    assert len(side_tables.read_users(str(dest / features.USERS_FILE))) == 300


def test_spans_follow_time(spans):
    dest, _ = spans
    newest = [max(r.timestamp for r in read(dest / f"span-{n}" / features.RATINGS_FILE)) for n in range(1, 5)]
    oldest = [min(r.timestamp for r in read(dest / f"span-{n}" / features.RATINGS_FILE)) for n in range(1, 5)]
    assert all(newest[n] < oldest[n + 1] for n in range(3))


def test_skewed_like_real_ratings(spans):
    dest, _ = spans
    ratings = [r for span in range(1, 5) for r in read(dest / f"span-{span}" / features.RATINGS_FILE)]
    per_user = np.array(list(collections.Counter(r.user_id for r in ratings).values()))
    per_movie = np.sort(list(collections.Counter(r.movie_id for r in ratings).values()))[::-1]
    assert per_user.max() > 8 * np.median(per_user) > 8 * per_user.min()  # very different activity
    assert per_movie[: len(per_movie) // 10].sum() > 0.3 * len(ratings)  # a popular head, a long tail
    by_movie = collections.defaultdict(list)
    for r in ratings:
        by_movie[r.movie_id].append(r.rating)
    means = [np.mean(v) for v in by_movie.values() if len(v) >= 20]
    assert np.std(means) > 0.3                                 # movies differ in quality


def test_same_seed_same_files_another_seed_other_files(tmp_path):
    spec = synth.SynthSpec(ratings=3_000, users=50, movies=200, seed=7, spans=2)
    synth.synthesize(spec, tmp_path / "a")
    synth.synthesize(spec, tmp_path / "b")
    synth.synthesize(dataclasses.replace(spec, seed=8), tmp_path / "c")
    names = [f"span-{n}/{features.RATINGS_FILE}" for n in (1, 2)] + [
        features.MOVIES_FILE, features.USERS_FILE, synth.SPEC_FILE]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in names[:-1]:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name


def test_draws_are_draws_without_replacement():
    """A user's movies are successive draws without replacement, each in proportion to the weights
    of the movies left (the referee: that definition's pair probabilities, P({i, j}) = p_i p_j
    (1 / (1 - p_i) + 1 / (1 - p_j)), as numpy's Generator.choice(replace=False, p=...) draws), and
    never a movie the user rated before."""
    weights = np.array([5.0, 3.0, 1.0, 0.5, 0.5], np.float32)
    p = weights / weights.sum()
    rng, draws = np.random.default_rng(0), 8_000
    seen = collections.Counter(frozenset(synth._pick(weights, 2, np.array([], np.int64), rng).tolist())
                               for _ in range(draws))
    exact = {frozenset((i, j)): p[i] * p[j] * (1 / (1 - p[i]) + 1 / (1 - p[j]))
             for i in range(5) for j in range(i + 1, 5)}
    assert sum(abs(seen[pair] / draws - probability) for pair, probability in exact.items()) / 2 < 0.03, seen
    after = collections.Counter(int(synth._pick(weights, 1, np.array([0]), rng)[0]) for _ in range(4_000))
    assert 0 not in after and after[1] / 4_000 == pytest.approx(3.0 / 5.0, abs=0.03)


def test_impossible_sizes_are_refused(tmp_path):
    with pytest.raises(DataError, match="do not fit"):
        synth.synthesize(synth.SynthSpec(ratings=1_000, users=2, movies=10), tmp_path)
    result = movierec("data", "synth", "--ratings", 10, "--users", 20, "--movies", 5, "--dest", tmp_path / "x")
    assert result.returncode != 0 and "20 users need at least as many ratings" in result.stderr
    assert not (tmp_path / "x").exists()
