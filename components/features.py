"""The one source of truth for column and feature names, shared by data import, pipeline and model."""

USER_ID = "user_id"
MOVIE_ID = "movie_id"
RATING = "rating"
TIMESTAMP = "timestamp"

# Header of the canonical ratings CSV, in order.
RATINGS_COLUMNS = (USER_ID, MOVIE_ID, RATING, TIMESTAMP)
# Features the model looks up in vocabularies; both are strings end to end.
ID_FEATURES = (USER_ID, MOVIE_ID)
LABEL_KEY = RATING

# The canonical dataset folder.
RATINGS_FILE, MOVIES_FILE, USERS_FILE = "ratings.csv", "movies.csv", "users.csv"
# Side tables written beside ratings.csv.
TITLE, YEAR, GENRES = "title", "year", "genres"
AGE, GENDER, OCCUPATION, ZIP = "age", "gender", "occupation", "zip"
MOVIES_COLUMNS = (MOVIE_ID, TITLE, YEAR, GENRES)
USERS_COLUMNS = (USER_ID, AGE, GENDER, OCCUPATION, ZIP)
GENRE_SEPARATOR = "|"
# Transform-derived slices: the bucket of training ratings per user / per movie.
USER_ACTIVITY, MOVIE_POPULARITY = "user_activity", "movie_popularity"
SLICE_FEATURES = (USER_ACTIVITY, MOVIE_POPULARITY)
# Side features ExampleGen joins onto each rating (absent when the side table or row is missing).
MOVIE_FEATURES = (TITLE, YEAR, GENRES)
USER_FEATURES = (AGE, GENDER, OCCUPATION)
# Unknown values of the side features after Transform (missing row, or missing side table).
UNKNOWN_INT, UNKNOWN_TEXT = -1, ""


def transformed_name(key: str) -> str:
    """Name of a feature after Transform."""
    return f"{key}_xf"


def vocabulary_name(key: str) -> str:
    """Name of the vocabulary file Transform writes for an ID feature."""
    return f"{key}_vocab"


# Vocabulary lines are "<count> <token>": a space inside an ID is stored as this marker
# (tf.Transform's own convention for frequency vocabularies).
SPACE_MARKER = "__SPACE__"


def vocabulary_id(line: bytes) -> bytes:
    """The ID on a vocabulary line "<count> <token>"."""
    return line.split(b" ", 1)[1].replace(SPACE_MARKER.encode(), b" ")
