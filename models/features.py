"""Names of what Transform produces: transformed features, vocabularies, activity slices.

Raw column and feature names belong to the data format (ratings/features.py); these are
the model's own, shared by preprocessing, training, export and the pipeline's evaluation.
"""
from typing import List, Sequence

from ratings.features import LABEL_KEY, MOVIE_ID, USER_ID


def transformed_name(key: str) -> str:
    """Name of a feature after Transform."""
    return f"{key}_xf"


USER_XF, MOVIE_XF, RATING_XF = (transformed_name(key) for key in (USER_ID, MOVIE_ID, LABEL_KEY))


def vocabulary_name(key: str) -> str:
    """Name of the vocabulary file Transform writes for an ID feature."""
    return f"{key}_vocab"


# Vocabulary lines are "<count> <token>": a space inside an ID is stored as this marker
# (tf.Transform's own convention for frequency vocabularies).
SPACE_MARKER = "__SPACE__"


def vocabulary_id(line: bytes) -> bytes:
    """The ID on a vocabulary line "<count> <token>"."""
    return line.split(b" ", 1)[1].replace(SPACE_MARKER.encode(), b" ")


# Transform-derived slices: the bucket of training ratings per user / per movie.
USER_ACTIVITY, MOVIE_POPULARITY = "user_activity", "movie_popularity"
SLICE_FEATURES = (USER_ACTIVITY, MOVIE_POPULARITY)
# Upper bounds of the buckets (ratings in training); the pipeline's settings default to these.
DEFAULT_USER_ACTIVITY_BOUNDS = (0, 20, 50, 150)
DEFAULT_MOVIE_POPULARITY_BOUNDS = (0, 10, 50, 200)


def bucket_labels(bounds: Sequence[int]) -> List[str]:
    """["0", "1-20", "21-50", ..., ">150"] for bounds (0, 20, 50, 150)."""
    labels, low = [], 0
    for high in bounds:
        labels.append(str(high) if high == low else f"{low}-{high}")
        low = high + 1
    return labels + [f">{bounds[-1]}"]
