"""Side features by ID for models with `side_features`: movie genres and decade; user age, gender, occupation.

They are properties of an ID, not of a rating, so the model holds them as tables indexed like
its embeddings (built from the catalogue ExampleGen's join filled in) and serving still needs
only IDs. Each categorical field maps to small integers with 0 = unknown; genres are a
multi-hot row normalised to sum 1, so a movie's genre vector is the mean of its genres' vectors.
The last row of every table is the OOV index's, all unknown.
"""
import dataclasses
from typing import Sequence, Tuple

import numpy as np

from ratings import features
from models.catalog import Catalog

# Category boundaries: decades for release years, the MovieLens age groups for ages.
YEAR_BOUNDS = tuple(range(1920, 2030, 10))
AGE_BOUNDS = (18, 25, 35, 45, 50, 56)


@dataclasses.dataclass(frozen=True)
class SideTables:
    categories: np.ndarray      # [ids + 1, fields] int32, 0 = unknown
    field_sizes: Tuple[int, ...]  # number of categories of each field, unknown included
    multi_hot: np.ndarray       # [ids + 1, values] float32 rows summing to 1 (or 0 if none)


def _buckets(values: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """1 + the bucket of each known value (-1 is unknown -> 0)."""
    values = values.astype(np.int64)
    return np.where(values == features.UNKNOWN_INT, 0, 1 + np.searchsorted(bounds, values, side="right"))


def _categories(values: np.ndarray) -> Tuple[np.ndarray, int]:
    """1 + the rank of each known text value among the sorted distinct ones (b"" -> 0)."""
    distinct = sorted({v for v in values if v})
    index = {value: position + 1 for position, value in enumerate(distinct)}
    return np.array([index.get(v, 0) for v in values], np.int64), len(distinct) + 1


def _multi_hot(joined: np.ndarray) -> np.ndarray:
    """Rows of "|"-joined values (e.g. genres) as normalised multi-hot vectors."""
    rows = [[g for g in v.decode("utf-8").split(features.GENRE_SEPARATOR) if g] for v in joined]
    vocabulary = {value: position for position, value in enumerate(sorted({g for row in rows for g in row}))}
    table = np.zeros((len(rows), max(len(vocabulary), 1)), np.float32)
    for position, row in enumerate(rows):
        for value in row:
            table[position, vocabulary[value]] = 1.0 / len(row)
    return table


def _with_oov_row(categories: Sequence[np.ndarray], sizes: Sequence[int], multi_hot: np.ndarray) -> SideTables:
    stacked = np.stack(categories, axis=1) if categories else np.zeros((len(multi_hot), 0), np.int64)
    return SideTables(
        categories=np.concatenate([stacked, np.zeros((1, stacked.shape[1]), np.int64)]).astype(np.int32),
        field_sizes=tuple(sizes),
        multi_hot=np.concatenate([multi_hot, np.zeros((1, multi_hot.shape[1]), np.float32)]))


def movie_tables(catalog: Catalog) -> SideTables:
    return _with_oov_row([_buckets(catalog.years, YEAR_BOUNDS)], [len(YEAR_BOUNDS) + 2],
                         _multi_hot(catalog.genres))


def tables(catalog: Catalog):
    """`build_model`'s user_side / movie_side keyword arguments."""
    return {"user_side": user_tables(catalog), "movie_side": movie_tables(catalog)}


def user_tables(catalog: Catalog) -> SideTables:
    genders, gender_count = _categories(catalog.genders)
    occupations, occupation_count = _categories(catalog.occupations)
    return _with_oov_row([_buckets(catalog.ages, AGE_BOUNDS), genders, occupations],
                         [len(AGE_BOUNDS) + 2, gender_count, occupation_count],
                         np.zeros((catalog.num_users, 1), np.float32))
