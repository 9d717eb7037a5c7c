"""`data fetch` reaches the network (GroupLens, or the copy inside PyPI's recbole wheel): the
one test that needs it, so the unit tests run without a network."""
from ratings import features


def test_fetch_movielens_100k(movielens_100k):
    """The fetched dataset is the real one: 100,000 ratings by 943 users of 1,682 movies."""
    lines = (movielens_100k / "ratings.csv").read_text().splitlines()
    assert lines[0] == ",".join(features.RATINGS_COLUMNS) and len(lines) == 100_001
    users = {line.split(",")[0] for line in lines[1:]}
    movies = {line.split(",")[1] for line in lines[1:]}
    assert (len(users), len(movies)) == (943, 1682)
    assert "1,Toy Story,1995,Animation|Children's|Comedy" in (movielens_100k / "movies.csv").read_text()
