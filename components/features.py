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

# Side tables written beside ratings.csv.
MOVIES_COLUMNS = (MOVIE_ID, "title", "year", "genres")
USERS_COLUMNS = (USER_ID, "age", "gender", "occupation", "zip")
GENRE_SEPARATOR = "|"


def transformed_name(key: str) -> str:
    """Name of a feature after Transform."""
    return f"{key}_xf"


def vocabulary_name(key: str) -> str:
    """Name of the vocabulary file Transform writes for an ID feature."""
    return f"{key}_vocab"
