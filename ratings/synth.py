"""Synthetic ratings with MovieLens-like structure, at any size, for accuracy and scale tests.

Each rating is `mean + user bias + movie bias + user·movie factors + noise`, rounded to 1-5 stars.
Who rates what follows real-world skew: movie popularity is Zipf-like (a long tail), user
activity is log-normal (a few very active users, many with a handful of ratings), and no user rates
a movie twice. Timestamps come from per-user active periods, so spans by time look like a live
service. Movie genres follow the movie's strongest latent factors, so side features carry signal.

Users are generated in blocks and written as they are made: memory stays bounded by the block
size, not by the number of ratings.
"""
import dataclasses
import os
import pathlib
from typing import Dict, List

import numpy as np
import pandas as pd

from ratings import features
from ratings.errors import DataError

GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
OCCUPATIONS = ("administrator", "artist", "educator", "engineer", "executive", "homemaker", "lawyer",
               "librarian", "programmer", "retired", "scientist", "student", "technician", "writer")
GLOBAL_MEAN, USER_BIAS_STD, MOVIE_BIAS_STD, NOISE_STD = 3.53, 0.45, 0.55, 0.6
# The user·movie dot product gets this standard deviation whatever the number of factors.
INTERACTION_STD = 0.7
ZIPF_EXPONENT, ACTIVITY_SIGMA = 1.0, 1.2
FIRST_TIMESTAMP, HISTORY_SECONDS = 1_420_070_400, 3 * 365 * 86_400  # 2015-01-01, three years
# Cells of the user x movie sampling matrix per block (float32): ~80 MB.
BLOCK_CELLS = 20_000_000


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
        if not 1 <= self.factors <= len(GENRES):
            raise DataError(f"--factors must be between 1 and {len(GENRES)}")


def _max_per_user(movies: int) -> int:
    """The most active user rates at most half the catalogue (all of it when it is tiny)."""
    return movies if movies < 4 else movies // 2


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


def _sample_movies(counts: np.ndarray, log_popularity: np.ndarray,
                   rng: np.random.Generator) -> List[np.ndarray]:
    """For each user, `count` distinct movies drawn by popularity (Gumbel top-k, no replacement)."""
    keys = log_popularity[None, :] + rng.gumbel(size=(counts.size, log_popularity.size)).astype(np.float32)
    top = int(counts.max())
    candidates = np.argpartition(-keys, top - 1, axis=1)[:, :top] if top < keys.shape[1] else \
        np.tile(np.arange(keys.shape[1]), (counts.size, 1))
    order = np.argsort(-np.take_along_axis(keys, candidates, axis=1), axis=1)
    ranked = np.take_along_axis(candidates, order, axis=1)
    return [ranked[i, :count] for i, count in enumerate(counts)]


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


def synthesize(spec: SynthSpec, dest: pathlib.Path) -> Dict[str, int]:
    """Writes ratings (one CSV, or span-<N>/ratings.csv when spec.spans > 1), movies.csv and
    users.csv to `dest`; returns {span number: ratings}."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    factor_std = (INTERACTION_STD ** 2 / spec.factors) ** 0.25
    user_factors = rng.normal(0, factor_std, (spec.users, spec.factors)).astype(np.float32)
    movie_factors = rng.normal(0, factor_std, (spec.movies, spec.factors)).astype(np.float32)
    user_bias = rng.normal(0, USER_BIAS_STD, spec.users).astype(np.float32)
    popularity_rank = rng.permutation(spec.movies)
    log_popularity = (-ZIPF_EXPONENT * np.log(popularity_rank + 10.0)).astype(np.float32)
    # Popular movies are rated a little higher, as in MovieLens.
    movie_bias = (rng.normal(0, MOVIE_BIAS_STD, spec.movies)
                  - 0.1 * (np.log1p(popularity_rank) - np.log1p(spec.movies) / 2)).astype(np.float32)
    first_seen = FIRST_TIMESTAMP + rng.integers(0, HISTORY_SECONDS, spec.users)
    active_for = (HISTORY_SECONDS * rng.beta(0.5, 2.0, spec.users)).astype(np.int64) + 1
    counts = _ratings_per_user(spec, rng)

    dest.mkdir(parents=True, exist_ok=True)
    writers = _SpanWriters(dest, spec.spans)
    per_span = np.zeros(spec.spans, dtype=np.int64)
    by_activity = np.argsort(counts)  # similar counts share a block, so top-k stays small
    completed = False
    try:
        start = 0
        while start < spec.users:
            block_size = max(1, BLOCK_CELLS // spec.movies)
            block = by_activity[start:start + block_size]
            start += block.size
            movies = _sample_movies(counts[block], log_popularity, rng)
            users = np.repeat(block, counts[block])
            movies = np.concatenate(movies)
            score = (GLOBAL_MEAN + user_bias[users] + movie_bias[movies]
                     + np.einsum("ij,ij->i", user_factors[users], movie_factors[movies])
                     + rng.normal(0, NOISE_STD, users.size))
            stars = np.clip(np.rint(score), 1, 5).astype(np.int8)
            timestamps = np.minimum(first_seen[users] + rng.integers(0, active_for[users]),
                                    FIRST_TIMESTAMP + HISTORY_SECONDS - 1)
            span = (timestamps - FIRST_TIMESTAMP) * spec.spans // HISTORY_SECONDS
            np.add.at(per_span, span, 1)
            writers.write(span, pd.DataFrame({
                features.USER_ID: users + 1, features.MOVIE_ID: movies + 1,
                features.RATING: stars, features.TIMESTAMP: timestamps}))
        _write_side_tables(dest, spec, movie_factors, rng)
        completed = True
    finally:
        writers.close(keep=completed)
    return {n + 1: int(count) for n, count in enumerate(per_span)}


def _write_side_tables(dest: pathlib.Path, spec: SynthSpec, movie_factors: np.ndarray,
                       rng: np.random.Generator) -> None:
    strongest = np.argsort(-movie_factors, axis=1)[:, :2]
    second_is_strong = movie_factors[np.arange(spec.movies), strongest[:, 1]] > 0
    genres = [GENRES[a] + (features.GENRE_SEPARATOR + GENRES[b] if both else "")
              for (a, b), both in zip(strongest, second_is_strong)]
    movie_ids = np.arange(1, spec.movies + 1)
    pd.DataFrame({features.MOVIE_ID: movie_ids,
                  features.TITLE: [f"Synthetic Movie {i}" for i in movie_ids],
                  features.YEAR: rng.integers(1930, 2015, spec.movies),
                  features.GENRES: genres}).to_csv(dest / features.MOVIES_FILE, index=False)
    pd.DataFrame({features.USER_ID: np.arange(1, spec.users + 1),
                  features.AGE: rng.integers(15, 75, spec.users),
                  features.GENDER: rng.choice(["F", "M"], spec.users),
                  features.OCCUPATION: rng.choice(OCCUPATIONS, spec.users),
                  features.ZIP: rng.integers(10000, 99999, spec.users)}).to_csv(
        dest / features.USERS_FILE, index=False)
