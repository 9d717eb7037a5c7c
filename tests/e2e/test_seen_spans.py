"""Spans older than the rolling window are still what the user told us: the pushed model excludes
their movies (issue 21). Referee: the span files handed to `movierec run`."""
import tensorflow as tf

from tests.served_lists import full_lists, rated_by_user, text
from tests.pipeline_runs import Replay


def test_a_movie_rated_in_a_span_older_than_the_window_never_comes_back(accepted_span_1, spans, tmp_path):
    # Span 1 run and pushed (a window of one span or three is the same for the first span), then
    # span 2 with a window of one span.
    replay = Replay(tmp_path, spans, "rolling_spans: 1\n", start=accepted_span_1)
    assert accepted_span_1.result.returncode == 0, accepted_span_1.result.stderr[-3000:]
    replay.add_span(2)
    result = replay.run()
    assert result.returncode == 0, result.stderr[-3000:]
    summary = replay.summary()
    assert summary.span == 2 and summary.pushed
    pushed = tf.saved_model.load(f"{replay.config.push_base}/{replay.versions()[-1]}")
    catalogue = set(text(pushed.movie_ids.numpy()))
    old, new = (rated_by_user(replay.data / f"span-{span}" / "ratings.csv") for span in (1, 2))
    # The model trained on span 2 alone; span 1 left the window, but its movies that span 2's
    # catalogue holds are what its users rated: there are some.
    forgotten = {user: (movies - new.get(user, set())) & catalogue for user, movies in old.items()}
    assert sum(map(len, forgotten.values())) > 10
    lists = full_lists(pushed, sorted(old))
    for user, movies in old.items():
        assert not lists[user] & movies, user
        assert lists[user] == catalogue - movies - new.get(user, set())
