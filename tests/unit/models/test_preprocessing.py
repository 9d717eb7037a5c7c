"""preprocessing_fn through tf.Transform: vocabularies by frequency, one OOV bucket for unseen IDs.

Both tests read the unit tests' one tf.Transform run (tests/transform.py SHARED_ROWS), where four
ratings are planted beside test_export's and test_retrieval's catalogues (no user or movie in
common): "ann lee" (an ID with a space) rated p1 once; pu rated p1 in one span (3.0 at t=50), p2,
and p1 again in a later span (1.0 at t=70), both ratings of p1 in the rolling window. What the vocabularies hold is derived from
all the shared rows by tft.vocabulary's documented order (tensorflow_transform/analyzers.py
`vocabulary`: decreasing frequency, then reverse lexicographical order), counted here in Python."""
import collections

import pytest
import tensorflow as tf

from models import catalog
from models.features import SPACE_MARKER, USER_ACTIVITY, transformed_name, vocabulary_name
from ratings import features
from tests.transform import ANN, P1, P2, PREPROCESSING_ROWS, PU


def referee_vocabulary(rows, key):
    """[(count, token as written)] of a raw ID column, in tft.vocabulary's order; a space inside an
    ID is written as the marker (models/preprocessing.py)."""
    counts = collections.Counter(r[key][0].replace(b" ", SPACE_MARKER.encode()) for r in rows)
    return sorted(((count, token) for token, count in counts.items()), reverse=True)


@pytest.fixture(scope="module")
def transformed(shared_transform):
    """(transformed rows of PREPROCESSING_ROWS, TFTransformOutput, {user: index}, {movie: index},
    the user vocabulary and the movie vocabulary by the referee)."""
    rows, transformed_rows, output = shared_transform
    start = len(rows) - len(PREPROCESSING_ROWS)
    assert rows[start:] == PREPROCESSING_ROWS
    users, movies = (referee_vocabulary(rows, key) for key in (features.USER_ID, features.MOVIE_ID))
    index = lambda vocabulary: {token.replace(SPACE_MARKER.encode(), b" "): i for i, (_, token) in enumerate(vocabulary)}
    return transformed_rows[start:], output, index(users), index(movies), users, movies


def test_vocabularies_and_oov(transformed):
    """The catalogue the Trainer fits on keeps pu's newer rating of p1."""
    transformed, output, user_index, movie_index, user_vocabulary, movie_vocabulary = transformed
    user_xf, movie_xf = transformed_name(features.USER_ID), transformed_name(features.MOVIE_ID)
    # Most frequent first: pu (3 ratings) before ann lee (1); p1 (3) before p2 (1).
    assert user_index[PU] < user_index[ANN] and movie_index[P1] < movie_index[P2]
    assert [int(r[user_xf][0]) for r in transformed] == [user_index[u] for u in (ANN, PU, PU, PU)]
    assert [int(r[movie_xf][0]) for r in transformed] == [movie_index[m] for m in (P1, P1, P2, P1)]
    assert [float(r[transformed_name(features.RATING)][0]) for r in transformed] == [4.0, 3.0, 5.0, 1.0]
    # Titles pass through for the catalogue; a movie without a side-table row gets "".
    assert [r[transformed_name(features.TITLE)][0] for r in transformed] == [b"One", b"One", b"", b"One"]
    assert [r[transformed_name(features.GENRES)][0] for r in transformed] == [
        b"Drama|War", b"Drama|War", b"", b"Drama|War"]
    # Side features the model may embed pass through too, with -1 / "" where unknown.
    assert [int(r[transformed_name(features.YEAR)][0]) for r in transformed] == [1998, 1998, -1, 1998]
    assert {r[transformed_name(features.OCCUPATION)][0] for r in transformed} == {b""}
    # Slices: ann lee has 1 training rating, pu has 3; p1 has 3, p2 has 1 (bounds 0, 20, ...).
    assert {r[USER_ACTIVITY][0] for r in transformed} == {b"1-20"}

    # Vocabulary lines are "<count> <id>", a space inside an ID written as the marker.
    assert output.vocabulary_by_name(vocabulary_name(features.USER_ID)) == [
        b"%d %s" % line for line in user_vocabulary]
    assert b"1 " + ANN.replace(b" ", SPACE_MARKER.encode()) in output.vocabulary_by_name(vocabulary_name(features.USER_ID))
    assert output.vocabulary_size_by_name(vocabulary_name(features.MOVIE_ID)) == len(movie_vocabulary)

    batch = {key: [r[key] for r in transformed] for key in transformed[0]}
    batch[features.TIMESTAMP] = [r[features.TIMESTAMP] for r in PREPROCESSING_ROWS]
    for scan_order in (slice(None), slice(None, None, -1)):  # whichever span's files are read first
        seen = catalog.build(output, [{key: tf.constant(values[scan_order]) for key, values in batch.items()}])
        assert [(seen.user_ids[u], seen.movie_ids[m], float(r)) for u, m, r in
                zip(seen.seen_users(), seen.seen_movies, seen.seen_ratings)] == [
            (PU, P1, 1.0), (PU, P2, 5.0), (ANN, P1, 4.0)]

    # At serving time only the IDs arrive; an unseen ID maps to the OOV bucket == vocabulary size.
    layer = output.transform_features_layer()
    served = layer({features.USER_ID: tf.constant([[ANN], [b"stranger"]]),
                    features.MOVIE_ID: tf.constant([[P2], [b"p9"]])})
    assert served[user_xf].numpy().ravel().tolist() == [user_index[ANN], len(user_vocabulary)]
    assert served[movie_xf].numpy().ravel().tolist() == [movie_index[P2], len(movie_vocabulary)]
    # A user unseen in training is in the "0" activity bucket.
    assert served[USER_ACTIVITY].numpy().ravel().tolist() == [b"1-20", b"0"]


def test_ids_with_spaces_keep_their_index_and_count(transformed):
    """An ID with a space round-trips (catalog reads the vocabulary back) and maps to its own
    index and activity bucket; its first word alone is another, unknown, ID."""
    _, output, user_index, _, user_vocabulary, _ = transformed
    assert catalog.vocabulary(output, features.USER_ID).tolist() == sorted(user_index, key=user_index.get)
    assert catalog.vocabulary(output, features.USER_ID)[user_index[ANN]] == ANN

    served = output.transform_features_layer()({features.USER_ID: tf.constant([[ANN], [b"ann"]]),
                                                features.MOVIE_ID: tf.constant([[P1], [P1]])})
    assert served[transformed_name(features.USER_ID)].numpy().ravel().tolist() == [
        user_index[ANN], len(user_vocabulary)]
    assert served[USER_ACTIVITY].numpy().ravel().tolist() == [b"1-20", b"0"]
