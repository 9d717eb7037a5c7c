"""The data format: column, file and feature names, shared by data import, ExampleGen, model and serving.

Names of what Transform derives from these live in models/features.py."""

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
# Unknown values of the side features after Transform (missing row, or missing side table).
UNKNOWN_INT, UNKNOWN_TEXT = -1, ""

