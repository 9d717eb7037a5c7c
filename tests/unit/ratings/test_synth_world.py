"""`movierec data synth`'s planted world shows in its files: tastes a model can learn, side features
that partly explain them, tastes and releases that move across spans, and a known floor and ceiling.

Referees: the planted truth (`synth.World`, recomputed from the spec), peers fitted on exactly the
same rows (EASE, most-popular, a biases-only rating model; models/metrics/ranking.py's scoring), label
permutations as the null for side-feature effects, real MovieLens-100K (its star shares, how much
its rating distribution moves month to month), and TFDV's drift comparators at the ValidationGate's
default thresholds for the spans a user would feed the pipeline.
"""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow_data_validation as tfdv

from ratings import schema
from benchmarks import drift as calibration
from components.validation_gate import check_drift
from models.metrics import ranking
from benchmarks import ranking_peers
from models.layers import side_features
from ratings import features, spans as span_folders, synth
from pipeline import configs
from pipeline.pipeline import drift_comparators

SPEC = synth.SynthSpec(ratings=50_000, users=1_000, movies=2_000, seed=0)


@pytest.fixture(scope="module")
def world_data(tmp_path_factory):
    """(world, all ratings, the train part, the held-out part: a random 20% of the pairs)."""
    dest = tmp_path_factory.mktemp("world")
    synth.synthesize(SPEC, dest)
    ratings = pd.read_csv(dest / features.RATINGS_FILE)
    held_out = np.random.default_rng(0).random(len(ratings)) < 0.2
    return synth.World.load(dest), dest, ratings, ratings[~held_out], ratings[held_out]


def ndcg(scorer, data: ranking.EvalSet) -> float:
    return ranking_peers.score_peer(scorer, data.train, data.relevant())[ranking.OVERALL].ndcg


def test_a_model_fitted_on_the_ratings_beats_most_popular_and_the_planted_ceiling_beats_both(world_data):
    world, _, _, train, test = world_data
    data = ranking.EvalSet.from_rows(train.user_id.values, train.movie_id.values, test.user_id.values,
                                     test.movie_id.values, test.rating.values)
    popular = ndcg(ranking.fit_popularity(data.train), data)
    ease = ndcg(ranking_peers.fit_ease(data.train, l2=500.0), data)
    users, movies = synth.index_of(data.all_user_ids), synth.index_of(data.movie_ids)
    ceiling = ndcg(lambda rows: world.expected_picks(users[rows], movies), data)
    # Who rates what carries personal signal: a model fitted on it ranks well above popularity
    # (0.18 vs 0.28 here; MovieLens-100K: 0.22 vs 0.44), and knowing the truth does better still.
    assert ease > 1.3 * popular, (ease, popular)
    assert ceiling > 1.3 * ease, (ceiling, ease)


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def test_the_noise_floor_is_what_the_ratings_show_and_a_fitted_model_stays_above_it(world_data):
    world, _, ratings, train, test = world_data
    preference = world.preference(synth.index_of(test.user_id), synth.index_of(test.movie_id), test.timestamp.values)
    expected = world.expected_stars(preference)
    floor = rmse(test.rating, expected)
    # The held-out stars spread around E[stars | preference] as the stated noise model says: stars
    # drawn afresh from the same preferences (N(0, NOISE_STD), cut into stars at the stated
    # STAR_CUTS) spread as much.
    score = preference + np.random.default_rng(1).normal(0, synth.NOISE_STD, preference.size)
    fresh = 1 + np.digitize(score, synth.STAR_CUTS)
    assert floor == pytest.approx(rmse(fresh, expected), rel=0.03)
    # A rating model fitted on the training part (mean + user and movie biases, alternating
    # regularised least squares) is well above the floor on the held-out part.
    mean = train.rating.mean()
    user_bias = pd.Series(0.0, index=ratings.user_id.unique())
    for _ in range(10):
        movie_bias = ((train.rating - mean - user_bias[train.user_id].values).groupby(train.movie_id).sum()
                      / (train.groupby("movie_id").size() + 10))
        user_bias = ((train.rating - mean - movie_bias[train.movie_id].values).groupby(train.user_id).sum()
                     / (train.groupby("user_id").size() + 10))
    fitted = rmse(test.rating, mean + user_bias.reindex(test.user_id).fillna(0).values
                  + movie_bias.reindex(test.movie_id).fillna(0).values)
    assert floor < fitted - 0.05, (floor, fitted)


def curated_schema():
    return tfdv.load_schema_text(str(schema.SCHEMA_FILE))


def between_group_share(mix: np.ndarray, labels: np.ndarray) -> float:
    """Share of the variance of per-row mixes (rows summing to 1) explained by the row's group."""
    centred = mix - mix.mean(axis=0)
    between = sum((labels == g).sum() * ((centred[labels == g].mean(axis=0)) ** 2).sum() for g in np.unique(labels))
    return between / (centred ** 2).sum()


def test_side_features_partly_explain_who_rates_what(world_data):
    _, dest, ratings, _, _ = world_data
    users = pd.read_csv(dest / features.USERS_FILE).set_index(features.USER_ID)
    movies = pd.read_csv(dest / features.MOVIES_FILE).set_index(features.MOVIE_ID)
    genres = np.array([[g in row.split(features.GENRE_SEPARATOR) for g in synth.GENRES] for row in movies.genres],
                      np.float64)
    # Users: the genre mix of what they rate depends on their age group, gender, occupation far
    # more than on the same labels shuffled among them.
    rated = sp.csr_matrix((np.ones(len(ratings)), (ratings.user_id - 1, ratings.movie_id - 1)),
                          shape=(len(users), len(movies)))
    mix = rated @ (genres / genres.sum(axis=1, keepdims=True))
    mix /= mix.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    groups = {"age group": np.searchsorted(side_features.AGE_BOUNDS, users.age.values, side="right"),
              "gender": pd.factorize(users.gender)[0], "occupation": pd.factorize(users.occupation)[0]}
    for name, labels in groups.items():
        shuffled = max(between_group_share(mix, rng.permutation(labels)) for _ in range(20))
        assert between_group_share(mix, labels) > 2.5 * shuffled, name
    # Movies: two movies sharing a genre are rated by more similar people than two that do not.
    top = np.argsort(-np.asarray(rated.sum(axis=0)).ravel())[:600]
    raters = rated[:, top].T.toarray()
    raters /= np.linalg.norm(raters, axis=1, keepdims=True)
    similarity = raters @ raters.T
    pairs = np.triu_indices(len(top), 1)

    def shared_genre_gap(genre_rows):
        shared = ((genre_rows @ genre_rows.T) > 0)[pairs]
        return similarity[pairs][shared].mean() - similarity[pairs][~shared].mean()
    shuffled = max(shared_genre_gap(genres[top][rng.permutation(len(top))]) for _ in range(20))
    assert shared_genre_gap(genres[top]) > 3 * shuffled


# Shaped like MovieLens-100K (943 users, 1,682 movies), in 8 spans as its 8 months.
MONTHS = synth.SynthSpec(ratings=100_000, users=943, movies=1_682, seed=0, spans=8)


def span_files(dest, count: int):
    return [dest / span_folders.SPAN_FOLDER.format(n) / features.RATINGS_FILE for n in range(1, count + 1)]


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    """(world, folder, spans) of MONTHS."""
    dest = tmp_path_factory.mktemp("months")
    synth.synthesize(MONTHS, dest)
    return synth.World.load(dest), dest, [pd.read_csv(path) for path in span_files(dest, MONTHS.spans)]


def star_shares(ratings: pd.Series) -> np.ndarray:
    return ratings.value_counts(normalize=True).reindex([1.0, 2.0, 3.0, 4.0, 5.0]).fillna(0.0).values


def test_the_rating_distribution_moves_between_spans_no_more_than_movielens_between_months(months, movielens_100k):
    _, _, spans = months
    synthetic = [star_shares(span.rating) for span in spans]
    real = pd.read_csv(movielens_100k / features.RATINGS_FILE)
    month = pd.to_datetime(real.timestamp, unit="s").dt.to_period("M")
    monthly = [star_shares(rows.rating) for _, rows in real.groupby(month)]
    jump = lambda shares: max(np.abs(a - b).max() for a, b in zip(shares, shares[1:]))  # L-infinity, as TFDV
    assert len(monthly) == len(synthetic) == 8
    assert jump(synthetic) <= jump(monthly), (jump(synthetic), jump(monthly))


def test_star_shares_are_movielens_shares(months, movielens_100k):
    """Users rate what they are drawn to, so most ratings are 3-5, with MovieLens' low tail: as
    many 1-star ratings as in MovieLens-100K (not the half that a normal rounded to stars gives)."""
    _, _, spans = months
    real = star_shares(pd.read_csv(movielens_100k / features.RATINGS_FILE).rating)
    synthetic = star_shares(pd.concat(spans).rating)
    assert np.abs(synthetic - real).max() < 0.02, (synthetic.round(3), real.round(3))


@pytest.mark.parametrize("spec", [MONTHS,
                                  synth.SynthSpec(ratings=100_000, users=943, movies=1_682, seed=0, spans=30),
                                  synth.SynthSpec(ratings=3_000, users=100, movies=300, seed=0, spans=8)],
                         ids=["100k-8-spans", "100k-30-spans", "3000-8-spans"])
def test_genuine_spans_pass_the_drift_check_with_margin(spec, request):
    """Every span compared with the one before it, as the ValidationGate compares them (TFDV's
    statistics of the span's train split, TFDV's drift comparators at the default thresholds:
    benchmarks/drift.py): none refused, each distance at most half its threshold. The tiny replay
    (spans of 160-700 ratings) is the hard one: a span without a single 1-star rating moves TFDV's
    rating histogram (its range) to a Jensen-Shannon divergence of ~0.37."""
    if spec == MONTHS:  # the months fixture's files, as synthetic_spans would write and read them
        parts = [calibration.read_span(path) for path in span_files(request.getfixturevalue("months")[1], spec.spans)]
    else:
        parts = calibration.synthetic_spans(spec)
    statistics = [calibration.span_statistics(span) for span in parts]
    drift = configs.DriftConfig()
    limits = {("rating", "Jensen-Shannon divergence"): drift.rating_jsd, ("user_id", "L-infinity distance"): drift.user_id_linf}
    measured = [d for i in range(1, len(parts))
                for d in check_drift(statistics[i], statistics[i - 1], curated_schema(), drift_comparators(drift))]
    assert len(measured) == 2 * (spec.spans - 1)
    worst = {key: max(d.value for d in measured if (d.feature, d.distance) == key) for key in limits}
    assert all(worst[key] <= limit / 2 for key, limit in limits.items()), worst


def test_new_releases_appear_across_spans(months):
    _, dest, spans = months
    movies = pd.read_csv(dest / features.MOVIES_FILE).set_index(features.MOVIE_ID)
    new = set(movies.index[movies.year >= 2015])
    shares = [span.movie_id.isin(new).mean() for span in spans]
    # None is rated before its release year begins, and their share of the ratings grows.
    for span in spans:
        released = span[span.movie_id.isin(new)]
        years = pd.to_datetime(released.timestamp, unit="s").dt.year.values
        assert (years >= movies.year[released.movie_id].values).all()
    assert shares[0] < 0.1 and shares[-1] > 2 * shares[0] and shares[-1] > 0.15, shares
    # And the most-rated movies of the last span include some that were not out in the first.
    top = spans[-1].movie_id.value_counts().index[:100]
    assert len(set(top) - set(spans[0].movie_id)) >= 10


def test_what_users_rate_follows_their_taste_as_it_drifts(months):
    """Users who rate in quarters at least a year apart: what they rate in the later quarter fits
    their taste of that quarter better than the taste they had a year before."""
    world, _, spans = months
    ratings = pd.concat(spans)
    users, movies = synth.index_of(ratings.user_id), synth.index_of(ratings.movie_id)
    quarter = synth.period_of(ratings.timestamp.values)
    first = pd.Series(quarter).groupby(users).transform("min").values
    late = quarter >= first + 4
    assert late.sum() > 2_000
    now = world.affinity(users[late], movies[late], quarter[late])
    before = world.affinity(users[late], movies[late], first[late])
    assert now.mean() > before.mean() + 0.1, (now.mean(), before.mean())
    # The drift is in the tastes, not a change of scale: each quarter's tastes have the same spread.
    spread = [np.linalg.norm(world.user_taste[q], axis=1).mean() for q in range(synth.PERIODS)]
    assert max(spread) / min(spread) < 1.05
