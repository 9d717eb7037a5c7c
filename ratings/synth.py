"""Synthetic ratings from a world with planted tastes, at any size, for quality and scale tests.

Why a world and not just ratings: a benchmark on synthetic data can only tell a good recommender
from a bad one if who-rates-what carries personal signal, as in real data, and its figures mean
something only beside the best any model could do. So the generator plants tastes, draws every
rating from them, and keeps the truth recomputable (`World.build(spec)`; `synth.json` beside the
ratings records the spec), so benchmarks report the ceiling and the floor on the same rows.

The model (every constant is named below):

- **Tastes.** Users and movies have vectors in `factors` dimensions, scaled so that the affinity
  a(u, m) = user . movie has mean 0 and standard deviation 1. Side features partly explain them:
  a movie's vector is sqrt(MOVIE_FEATURE_SHARE) x its features' vector (its genres' mean vector,
  GENRE_SHARE of it, and its decade's) plus the rest of its own; a user's is
  sqrt(USER_FEATURE_SHARE) x (age group + gender + occupation vectors) plus the rest of their own.
- **Time.** Three years from 2015-01-01 in PERIODS quarters. A user's own part drifts from quarter
  to quarter (AR(1) with correlation TASTE_DRIFT, stationary, so the rating distribution does not
  jump between spans). NEW_RELEASE_SHARE of the movies are released during the three years
  (evenly; the rest are the back catalogue, years 1920-2014 skewed to recent); a release can be
  rated from the quarter after it comes out, with a popularity burst of RELEASE_BURST in log
  popularity that fades by e every BURST_QUARTERS quarters.
- **Activity.** Ratings per user are log-normal (ACTIVITY_SIGMA), at least one each, summing to
  `ratings`, at most half the catalogue each. Each user is active for a window (start uniform over
  the three years, length 3 years x Beta(0.5, 2)); their ratings fall in the quarters it covers in
  proportion to the overlap, timestamps uniform within.
- **Choice** (which movies a user rates). In quarter q, user u picks their ratings of that quarter
  from the movies out by then, without replacement and never one they rated before, each draw
  with probability proportional to

      popularity_m(q) x exp(CHOICE_STRENGTH x a_q(u, m)),
      popularity_m(q) = (rank_m + 10)^-ZIPF_EXPONENT x the release burst

  (rank_m a random permutation: Zipf-like popularity). Drawn exactly: repeated draws with
  replacement, repeats and earlier picks discarded, are draws without replacement.
- **Ratings.** preference = GLOBAL_MEAN + user bias (N(0, USER_BIAS_STD)) + movie bias
  (N(0, MOVIE_BIAS_STD), a little higher for popular movies, as in MovieLens)
  + RATING_STRENGTH x a_q(u, m); stars = preference + N(0, NOISE_STD) cut into 1-5 at STAR_CUTS,
  which are rounding's 1.5, 2.5, 3.5, 4.5 moved to give MovieLens-100K's star shares (6, 11, 27,
  34, 21%): its ratings have a longer low tail than a rounded normal (which gives 3% 1-star).
  Users pick what they are drawn to, so the ratings people give are mostly 3-5. The low tail also
  keeps small spans' rating distributions steady: with half as many 1-star ratings, a span of ~150
  train rows can have none, which moves TFDV's rating histogram (its range) past the drift
  threshold.

What the truth gives a benchmark (`World`): the **ceiling**, lists ranked by the expected number of
times the choice model draws each movie for the user (`World.expected_picks`), scored like any
model's; and the **floor**, the RMSE of E[stars | preference] (`World.expected_stars`), which no
rating model can beat on average. The output layout and format are those of `data import`:
ratings.csv (or span-<N>/ratings.csv), movies.csv, users.csv, plus synth.json.

Users are generated in blocks and written as they are made: memory stays bounded by the block size
and the world's O((users x PERIODS + movies) x factors) vectors, not by the number of ratings.
"""
import dataclasses
import json
import os
import pathlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import special

from ratings import features
from ratings.errors import DataError

# MovieLens-100K's genres, and how many of its movies have each (u.item): the genre prior.
GENRE_COUNTS = {"Action": 251, "Adventure": 135, "Animation": 42, "Children's": 122, "Comedy": 505,
                "Crime": 109, "Documentary": 50, "Drama": 725, "Fantasy": 22, "Film-Noir": 24,
                "Horror": 92, "Musical": 56, "Mystery": 61, "Romance": 247, "Sci-Fi": 101,
                "Thriller": 251, "War": 71, "Western": 27}
GENRES = tuple(GENRE_COUNTS)
GENRES_PER_MOVIE = {1: 0.50, 2: 0.33, 3: 0.13, 4: 0.04}
# MovieLens-1M's age groups [low, high) and their shares; gender shares.
AGE_GROUPS = {(13, 18): 0.037, (18, 25): 0.183, (25, 35): 0.347, (35, 45): 0.198, (45, 50): 0.091,
              (50, 56): 0.082, (56, 74): 0.062}
GENDERS = {"M": 0.717, "F": 0.283}
OCCUPATIONS = {"administrator": 5, "artist": 4, "educator": 8, "engineer": 8, "executive": 6,
               "homemaker": 1, "lawyer": 2, "librarian": 2, "programmer": 6, "retired": 2,
               "scientist": 3, "student": 20, "technician": 4, "writer": 5}
FIRST_YEAR, LAST_BACK_CATALOGUE_YEAR, BACK_CATALOGUE_AGE = 1920, 2014, 12.0  # mean age in years

MOVIE_FEATURE_SHARE, GENRE_SHARE, USER_FEATURE_SHARE = 0.5, 0.75, 0.3
FIRST_TIMESTAMP, HISTORY_SECONDS, HISTORY_YEARS = 1_420_070_400, 3 * 365 * 86_400, 3  # 2015-01-01
PERIODS, TASTE_DRIFT = 12, 0.9
NEW_RELEASE_SHARE, RELEASE_BURST, BURST_QUARTERS = 0.2, 2.5, 1.5
ZIPF_EXPONENT, ACTIVITY_SIGMA, CHOICE_STRENGTH = 1.2, 1.2, 2.0
GLOBAL_MEAN, USER_BIAS_STD, MOVIE_BIAS_STD, RATING_STRENGTH, NOISE_STD = 3.6, 0.45, 0.5, 0.5, 0.8
STAR_CUTS = (1.8, 2.5, 3.45, 4.5)  # stars = 1 + how many cuts the noisy preference is above
MAX_FACTORS = 64
CALIBRATION_USERS = 512
SPEC_FILE = "synth.json"
# Cells of the users x movies weight matrix per block (float32): ~80 MB.
BLOCK_CELLS = 20_000_000
# Movies per chunk of the two-level sampler (cumulative sums within chunks stay precise in float32).
CHUNK = 128


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    ratings: int
    users: int
    movies: int
    seed: int = 0
    factors: int = 8
    spans: int = 1

    def check(self) -> None:
        if min(self.ratings, self.users, self.movies, self.spans) < 1:
            raise DataError("--ratings, --users, --movies and --spans must be at least 1")
        if self.users > self.ratings:
            raise DataError(f"{self.users:,} users need at least as many ratings (got {self.ratings:,})")
        if self.ratings > self.users * _max_per_user(self.movies):
            raise DataError(f"{self.ratings:,} ratings do not fit {self.users:,} users rating at most "
                            f"{_max_per_user(self.movies):,} of {self.movies:,} movies each")
        if not 1 <= self.factors <= MAX_FACTORS:
            raise DataError(f"--factors must be between 1 and {MAX_FACTORS}")


def _max_per_user(movies: int) -> int:
    """The most active user rates at most half the catalogue (all of it when it is tiny)."""
    return movies if movies < 4 else movies // 2


def period_start(period) -> np.ndarray:
    """First second of each quarter (integer division chosen so that period_of inverts it)."""
    return FIRST_TIMESTAMP - (-np.asarray(period, np.int64) * HISTORY_SECONDS // PERIODS)


def period_of(timestamps) -> np.ndarray:
    return (np.asarray(timestamps, np.int64) - FIRST_TIMESTAMP) * PERIODS // HISTORY_SECONDS


def index_of(ids: Sequence) -> np.ndarray:
    """World indices of user or movie IDs as written (ID = index + 1)."""
    return np.array([int(i) for i in ids], np.int64) - 1


def _categorical(rng: np.random.Generator, weights: Dict, size: int) -> np.ndarray:
    p = np.array(list(weights.values()), np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


@dataclasses.dataclass
class World:
    """Everything planted: tastes, biases, popularity, releases, side features, activity.

    Movies are indexed by release (the back catalogue first), so the movies out in quarter q are
    the first `available[q]`; IDs are index + 1.
    """
    spec: SynthSpec
    movie_taste: np.ndarray      # [M, d] float32
    movie_bias: np.ndarray       # [M] float32
    log_popularity: np.ndarray   # [PERIODS, M] float32, the release burst included
    available: np.ndarray        # [PERIODS] movies out in each quarter
    year: np.ndarray             # [M]
    genres: List[Tuple[int, ...]]
    user_taste: np.ndarray       # [PERIODS, U, d] float32
    user_bias: np.ndarray        # [U] float32
    age: np.ndarray
    gender: np.ndarray
    occupation: np.ndarray
    zip: np.ndarray
    period_counts: np.ndarray    # [U, PERIODS] ratings of each user in each quarter
    window: np.ndarray           # [U, 2] first and last+1 second of each user's activity
    chosen_mean: float = 0.0     # mean of movie bias + RATING_STRENGTH x affinity over chosen movies

    @classmethod
    def build(cls, spec: SynthSpec) -> "World":
        """The world of a spec: deterministic, cheap (no ratings), so benchmarks recompute it."""
        spec.check()
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(2)[0])
        d = spec.factors
        scale = d ** -0.25  # two independent vectors of N(0, scale^2) components: a dot product of std 1
        unit = lambda *shape: rng.normal(0.0, scale, shape + (d,)).astype(np.float32)

        # Movies: the back catalogue, then releases in order.
        m = spec.movies
        back = max(_max_per_user(m), m - int(round(m * NEW_RELEASE_SHARE)))
        released = np.sort(rng.integers(FIRST_TIMESTAMP, FIRST_TIMESTAMP + HISTORY_SECONDS, m - back))
        first_period = np.concatenate([np.zeros(back, np.int64), period_of(released) + 1])
        available = np.searchsorted(first_period, np.arange(PERIODS), side="right")
        age = np.floor(rng.exponential(BACK_CATALOGUE_AGE, back)).astype(np.int64)
        year = np.concatenate([np.maximum(LAST_BACK_CATALOGUE_YEAR - age, FIRST_YEAR),
                               2015 + (released - FIRST_TIMESTAMP) * HISTORY_YEARS // HISTORY_SECONDS])
        prior = np.log(np.array(list(GENRE_COUNTS.values()), np.float64))
        keys = prior + rng.gumbel(size=(m, len(GENRES)))  # Gumbel top-k: genres without replacement
        count = 1 + _categorical(rng, GENRES_PER_MOVIE, m)
        ranked = np.argsort(-keys, axis=1)
        genres = [tuple(sorted(row[:c].tolist())) for row, c in zip(ranked, count)]
        multi_hot = np.zeros((m, len(GENRES)), np.float32)
        multi_hot[np.repeat(np.arange(m), count), np.concatenate([g for g in genres])] = 1.0
        decade = (year - FIRST_YEAR) // 10
        genre_part = (multi_hot @ unit(len(GENRES))) / np.sqrt(count)[:, None]
        features_part = np.sqrt(GENRE_SHARE) * genre_part + np.sqrt(1 - GENRE_SHARE) * unit(int(decade.max()) + 1)[decade]
        movie_taste = (np.sqrt(MOVIE_FEATURE_SHARE) * features_part
                       + np.sqrt(1 - MOVIE_FEATURE_SHARE) * unit(m)).astype(np.float32)
        rank = rng.permutation(m)
        base = -ZIPF_EXPONENT * np.log(rank + 10.0)
        since = np.arange(PERIODS)[:, None] - first_period[None, :]  # quarters out, <0: not yet
        burst = np.where((since >= 0) & (np.arange(m) >= back), RELEASE_BURST * np.exp(-np.maximum(since, 0) / BURST_QUARTERS), 0.0)
        log_popularity = (base[None, :] + burst).astype(np.float32)
        movie_bias = (rng.normal(0, MOVIE_BIAS_STD, m) - 0.1 * (np.log1p(rank) - np.log1p(m) / 2)).astype(np.float32)

        # Users: side features, tastes that drift, biases, activity.
        u = spec.users
        group = _categorical(rng, AGE_GROUPS, u)
        bounds = np.array(list(AGE_GROUPS))
        ages = rng.integers(bounds[group, 0], bounds[group, 1])
        gender = _categorical(rng, GENDERS, u)
        occupation = _categorical(rng, OCCUPATIONS, u)
        user_features = (unit(len(AGE_GROUPS))[group] + unit(len(GENDERS))[gender]
                         + unit(len(OCCUPATIONS))[occupation]) / np.sqrt(3.0)
        own = unit(u)
        user_taste = np.empty((PERIODS, u, d), np.float32)
        for q in range(PERIODS):
            if q:
                own = TASTE_DRIFT * own + np.sqrt(1 - TASTE_DRIFT ** 2) * unit(u)
            user_taste[q] = np.sqrt(USER_FEATURE_SHARE) * user_features + np.sqrt(1 - USER_FEATURE_SHARE) * own
        user_bias = rng.normal(0, USER_BIAS_STD, u).astype(np.float32)
        zips = rng.integers(10000, 99999, u)
        counts = _ratings_per_user(spec, rng)
        start = FIRST_TIMESTAMP + rng.integers(0, HISTORY_SECONDS, u)
        end = np.minimum(start + (HISTORY_SECONDS * rng.beta(0.5, 2.0, u)).astype(np.int64) + 1,
                         FIRST_TIMESTAMP + HISTORY_SECONDS)
        edges = period_start(np.arange(PERIODS + 1))
        overlap = np.clip(np.minimum(end[:, None], edges[None, 1:]) - np.maximum(start[:, None], edges[None, :-1]), 0, None)
        period_counts = rng.multinomial(counts, overlap / overlap.sum(axis=1, keepdims=True))
        world = cls(spec, movie_taste, movie_bias, log_popularity, available, year, genres, user_taste,
                    user_bias, ages, gender, occupation, zips, period_counts, np.stack([start, end], axis=1))
        world.chosen_mean = world._chosen_mean(rng)
        return world

    @classmethod
    def load(cls, folder: pathlib.Path) -> Optional["World"]:
        """The world behind a `data synth` folder (its synth.json), or None for other data."""
        path = pathlib.Path(folder) / SPEC_FILE
        if not path.is_file():
            return None
        return cls.build(SynthSpec(**{k: v for k, v in json.loads(path.read_text()).items()
                                      if k in SynthSpec.__dataclass_fields__}))

    def affinity(self, users: np.ndarray, movies: np.ndarray, periods: np.ndarray) -> np.ndarray:
        """a_q(u, m) of aligned (user, movie, quarter) index arrays."""
        return np.einsum("ij,ij->i", self.user_taste[periods, users], self.movie_taste[movies])

    def preference(self, users: np.ndarray, movies: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """The planted preference of aligned (user, movie, timestamp) arrays, before the noise."""
        return (GLOBAL_MEAN - self.chosen_mean + self.user_bias[users] + self.movie_bias[movies]
                + RATING_STRENGTH * self.affinity(users, movies, period_of(timestamps)))

    @staticmethod
    def expected_stars(preference: np.ndarray) -> np.ndarray:
        """E[stars | preference]: stars = preference + N(0, NOISE_STD) cut at STAR_CUTS, so
        E = 5 - sum over s = 1..4 of P(stars <= s). The best prediction any rating model can make."""
        preference = np.asarray(preference, np.float64)
        below = [special.ndtr((cut - preference) / NOISE_STD) for cut in STAR_CUTS]
        return 5.0 - np.sum(below, axis=0)

    @staticmethod
    def stars(score: np.ndarray) -> np.ndarray:
        """Stars (int8, 1-5) of noisy preferences: 1 + how many of STAR_CUTS each is at or above."""
        return (1 + np.searchsorted(np.array(STAR_CUTS), score, side="right")).astype(np.int8)

    def choice_weights(self, users: np.ndarray, period: int) -> np.ndarray:
        """[len(users), available[period]] float32: popularity x exp(strength x affinity), each row
        divided by its largest (the choice probabilities up to a factor per row)."""
        n = self.available[period]
        # One product gives strength x affinity + log popularity: [strength x user, 1] . [movie, log pop].
        left = np.hstack([CHOICE_STRENGTH * self.user_taste[period, users], np.ones((len(users), 1), np.float32)])
        right = np.hstack([self.movie_taste[:n], self.log_popularity[period, :n, None]])
        logits = left @ right.T
        logits -= logits.max(axis=1, keepdims=True)
        return np.exp(logits, out=logits)

    def _chosen_mean(self, rng: np.random.Generator) -> float:
        """The mean of movie bias + RATING_STRENGTH x affinity over the movies users choose,
        estimated by choosing for CALIBRATION_USERS random users as the generator does."""
        sample = np.sort(rng.choice(self.spec.users, min(self.spec.users, CALIBRATION_USERS), replace=False))
        users, movies, periods = _choose(self, sample, rng)
        return float(np.mean(self.movie_bias[movies] + RATING_STRENGTH * self.affinity(users, movies, periods)))

    def expected_picks(self, users: np.ndarray, movies: Optional[np.ndarray] = None) -> np.ndarray:
        """[len(users), len(movies)] float32: how many times the choice model is expected to draw
        each movie for each user, over the quarters they rate in (sum over q of their ratings in q
        x the movie's choice probability in q). Ranking by it is the planted ceiling."""
        users = np.asarray(users, np.int64)
        movies = np.arange(self.spec.movies) if movies is None else np.asarray(movies, np.int64)
        out = np.empty((len(users), len(movies)), np.float32)
        for rows in np.array_split(np.arange(len(users)), max(1, len(users) * self.spec.movies // BLOCK_CELLS + 1)):
            picks = np.zeros((rows.size, self.spec.movies), np.float32)
            for q in range(PERIODS):
                active = np.flatnonzero(self.period_counts[users[rows], q])
                if active.size:
                    weights = self.choice_weights(users[rows][active], q)
                    weights *= (self.period_counts[users[rows][active], q] / weights.sum(axis=1))[:, None]
                    picks[active, :self.available[q]] += weights
            out[rows] = picks[:, movies]
        return out


def _ratings_per_user(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Log-normal activity, at least one rating each, summing exactly to spec.ratings."""
    cap = _max_per_user(spec.movies)
    weights = rng.lognormal(0.0, ACTIVITY_SIGMA, spec.users)
    counts = np.clip(np.floor(spec.ratings * weights / weights.sum()), 1, cap).astype(np.int64)
    while (missing := spec.ratings - counts.sum()) != 0:
        room = counts < cap if missing > 0 else counts > 1
        candidates = np.flatnonzero(room)
        picked = rng.choice(candidates, size=min(abs(missing), candidates.size), replace=False,
                            p=weights[candidates] / weights[candidates].sum())
        counts[picked] += np.sign(missing)
    return counts


class _Sampler:
    """Draws from one row of choice weights by two-level inverse CDF: a chunk of CHUNK movies by the
    float64 cumulative sum of the chunks' weights, then a movie by the cumulative sum within that
    chunk (a float32 cumulative sum over the whole catalogue would round the long tail's small
    weights away, and a float64 one costs more than the draws)."""

    def __init__(self, weights: np.ndarray):
        """weights: float32, a multiple of CHUNK long, 0 where a movie may not be drawn."""
        self.weights = weights
        self.rows = weights.reshape(-1, CHUNK)
        self.chunks = np.cumsum(self.rows.sum(axis=1), dtype=np.float64)

    def draw(self, k: int, rng: np.random.Generator) -> np.ndarray:
        target = rng.random(k) * self.chunks[-1]
        chunk = np.minimum(np.searchsorted(self.chunks, target, side="right"), len(self.chunks) - 1)
        rest = target - np.where(chunk > 0, self.chunks[chunk - 1], 0.0)
        within = np.cumsum(self.rows[chunk], axis=1)
        movie = chunk * CHUNK + np.minimum(np.count_nonzero(within <= rest[:, None], axis=1), CHUNK - 1)
        return movie[self.weights[movie] > 0]  # rounding can land on a zero weight: such a draw is discarded


def _pick(weights: np.ndarray, count: int, before: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct movies drawn with probability proportional to `weights`, none of `before`:
    draws with replacement, repeats discarded (exactly draws without replacement). When most of
    the weight left is on movies already taken, the sampler is rebuilt without them."""
    padded = np.zeros(-(-weights.size // CHUNK) * CHUNK, np.float32)
    padded[:weights.size] = weights
    padded[before] = 0.0
    sampler = _Sampler(padded)
    chosen: List[np.ndarray] = []
    taken = np.zeros(padded.size, bool)
    total = left = sampler.chunks[-1]
    need = count
    while need:
        draws = sampler.draw(int(need * total / left * 1.2) + 8, rng)
        draws = draws[~taken[draws]]
        new = draws[np.sort(np.unique(draws, return_index=True)[1])[:need]]
        taken[new] = True
        chosen.append(new)
        need -= new.size
        left -= float(padded[new].sum(dtype=np.float64))
        if need and left < 0.5 * total:
            padded[taken] = 0.0
            sampler = _Sampler(padded)
            total = left = sampler.chunks[-1]
    return np.concatenate(chosen)


def _choose(world: World, block: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, movie, quarter) of every rating of a block of users, quarter by quarter."""
    before: List[List[np.ndarray]] = [[] for _ in block]
    users, movies, periods = [], [], []
    for q in range(PERIODS):
        rows = np.flatnonzero(world.period_counts[block, q])
        if not rows.size:
            continue
        weights = world.choice_weights(block[rows], q)
        for row, user_weights in zip(rows, weights):
            count = int(world.period_counts[block[row], q])
            rated = np.concatenate(before[row]) if before[row] else np.empty(0, np.int64)
            picked = _pick(user_weights, count, rated, rng)
            before[row].append(picked)
            movies.append(picked)
            users.append(np.full(count, block[row]))
            periods.append(np.full(count, q))
    return np.concatenate(users), np.concatenate(movies), np.concatenate(periods)


class _SpanWriters:
    """One ratings CSV per span, written under temporary names and renamed when complete."""

    def __init__(self, dest: pathlib.Path, spans: int):
        folders = [dest] if spans == 1 else [dest / f"span-{n}" for n in range(1, spans + 1)]
        self.paths = [folder / features.RATINGS_FILE for folder in folders]
        self.temps = [path.with_name(f".{path.name}.tmp") for path in self.paths]
        for path in self.temps:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.files = [open(path, "w", newline="", encoding="utf-8") for path in self.temps]
        for f in self.files:
            f.write(",".join(features.RATINGS_COLUMNS) + "\n")

    def write(self, span: np.ndarray, frame: pd.DataFrame) -> None:
        for number, rows in frame.groupby(span, sort=False):
            rows.to_csv(self.files[number], header=False, index=False)

    def close(self, keep: bool) -> None:
        for f in self.files:
            f.close()
        for temp, path in zip(self.temps, self.paths):
            if keep:
                os.replace(temp, path)
            else:
                temp.unlink(missing_ok=True)


def synthesize(spec: SynthSpec, dest: pathlib.Path) -> Dict[int, int]:
    """Writes ratings (one CSV, or span-<N>/ratings.csv when spec.spans > 1), movies.csv,
    users.csv and synth.json to `dest`; returns {span number: ratings}."""
    world = World.build(spec)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(2)[1])
    dest.mkdir(parents=True, exist_ok=True)
    writers = _SpanWriters(dest, spec.spans)
    per_span = np.zeros(spec.spans, dtype=np.int64)
    by_activity = np.argsort(world.period_counts.sum(axis=1), kind="stable")
    completed = False
    try:
        for block in np.array_split(by_activity, max(1, spec.users * spec.movies // BLOCK_CELLS + 1)):
            users, movies, periods = _choose(world, block, rng)
            start, end = world.window[users, 0], world.window[users, 1]
            low = np.maximum(start, period_start(periods))
            timestamps = low + rng.integers(0, np.minimum(end, period_start(periods + 1)) - low)
            score = world.preference(users, movies, timestamps) + rng.normal(0, NOISE_STD, users.size)
            stars = World.stars(score)
            span = (timestamps - FIRST_TIMESTAMP) * spec.spans // HISTORY_SECONDS
            np.add.at(per_span, span, 1)
            writers.write(span, pd.DataFrame({
                features.USER_ID: users + 1, features.MOVIE_ID: movies + 1,
                features.RATING: stars, features.TIMESTAMP: timestamps}))
        _write_side_tables(dest, world)
        (dest / SPEC_FILE).write_text(json.dumps(dataclasses.asdict(spec), indent=1) + "\n")
        completed = True
    finally:
        writers.close(keep=completed)
    return {n + 1: int(count) for n, count in enumerate(per_span)}


def _write_side_tables(dest: pathlib.Path, world: World) -> None:
    movie_ids = np.arange(1, world.spec.movies + 1)
    pd.DataFrame({features.MOVIE_ID: movie_ids,
                  features.TITLE: [f"Synthetic Movie {i}" for i in movie_ids],
                  features.YEAR: world.year,
                  features.GENRES: [features.GENRE_SEPARATOR.join(GENRES[g] for g in row) for row in world.genres]}
                 ).to_csv(dest / features.MOVIES_FILE, index=False)
    pd.DataFrame({features.USER_ID: np.arange(1, world.spec.users + 1),
                  features.AGE: world.age,
                  features.GENDER: np.array(list(GENDERS))[world.gender],
                  features.OCCUPATION: np.array(list(OCCUPATIONS))[world.occupation],
                  features.ZIP: world.zip}).to_csv(dest / features.USERS_FILE, index=False)
