"""The seen tables: which catalogue movies each user has rated, as `recommend` reads them.

`recommend` uses them twice: `exclude_seen` leaves those movies out, and the history head
(retrieval/history_head.py) sums their history rows into the user's vector. The model the gates judge carries
its training ratings here (the Trainer's catalogue), so its evaluated lists never see the eval
split; the servable that is pushed carries every rating the pipeline accepted, all splits and
every validated span (components/servable_export), keyed by the user's ID whether or not the
rating model knows that user.

Layout, as the SavedModel stores it (export.py): `user_ids` [U] the users with a row (a hash
table maps an ID to its row, an unknown ID to row U), `row_splits` [U + 2] int64 (row U, the
unknown users', is empty), `movies` [N] int32 catalogue indices grouped by user, ascending, one
per distinct (user, movie) pair: 4 bytes a pair, 8 a user, plus the IDs. A movie outside the
catalogue has no row: `recommend` can never return it, and the head has no vector for it.
"""
import dataclasses

import numpy as np

from models.catalog import Catalog


@dataclasses.dataclass(frozen=True)
class Seen:
    user_ids: np.ndarray    # [U] bytes, the users with a row
    row_splits: np.ndarray  # [U + 2] int64; row U (unknown users) is empty
    movies: np.ndarray      # [N] int32 catalogue indices, grouped by user, ascending within a user

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_pairs(self) -> int:
        return len(self.movies)

    @property
    def nbytes(self) -> int:
        """What the tables hold in memory: the two arrays and the IDs (as the hash table and
        the `seen_user_ids` variable each hold them once)."""
        return int(self.row_splits.nbytes + self.movies.nbytes + 2 * sum(len(u) for u in self.user_ids))

    def user_rows(self) -> np.ndarray:
        """[N] the row (index into user_ids) of each entry of `movies`."""
        return np.repeat(np.arange(len(self.row_splits) - 1), np.diff(self.row_splits)).astype(np.int64)

    def of_user(self, user_id: bytes) -> np.ndarray:
        """The catalogue indices a user has rated (empty for an unknown user)."""
        rows = np.flatnonzero(self.user_ids == user_id)
        if not rows.size:
            return np.zeros(0, np.int32)
        return self.movies[self.row_splits[rows[0]]:self.row_splits[rows[0] + 1]]


def from_catalog(catalog: Catalog) -> Seen:
    """The rating model's own training ratings (the catalogue's rows, the users of its vocabulary)."""
    return Seen(user_ids=catalog.user_ids, row_splits=catalog.seen_row_splits,
                movies=catalog.seen_movies.astype(np.int32))


def from_pairs(user_rows: np.ndarray, user_ids: np.ndarray, movies: np.ndarray) -> Seen:
    """Seen tables of (user row, catalogue index) pairs; duplicates count once, pairs with a
    negative movie index (not in the catalogue) are dropped, and users left without a pair too.

    user_rows: [N] indices into user_ids; user_ids: [U] bytes.
    """
    user_rows, movies = np.asarray(user_rows, np.int64), np.asarray(movies, np.int64)
    keep = movies >= 0
    pairs = np.unique(user_rows[keep] * (int(movies.max(initial=0)) + 1) + movies[keep])
    width = int(movies.max(initial=0)) + 1
    rows, movies = pairs // width, (pairs % width).astype(np.int32)
    # Keep the users with a pair, renumbered in ID order (the order makes exports reproducible).
    present = np.unique(rows)
    ids = np.asarray(user_ids, dtype=object)[present]
    order = np.argsort(ids.astype(bytes), kind="stable")
    renumber = np.empty(len(present), np.int64)
    renumber[order] = np.arange(len(present))
    new_rows = renumber[np.searchsorted(present, rows)]
    by_row = np.argsort(new_rows, kind="stable")  # stable: movies stay ascending within a user
    counts = np.bincount(new_rows, minlength=len(present) + 1)
    return Seen(user_ids=ids[order], row_splits=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                movies=movies[by_row])
