"""A yardstick the new data cannot move: a span that re-rates the earlier users' movies with the
ratings shuffled among its rows (same users, movies, rating distribution and volume, so nothing a
data check looks at changes) trains a model that fits the new span and is worse on everything
accepted before it. It must not be blessed, though it beats the served model on the new span's
own eval split.

Referees: the planted truth (ratings shuffled among rows carry no signal, so a model fitted to
them predicts held-out genuine ratings worse), and TFMA: the yardstick's RMSE of the last blessed
model on span 1's eval split must be the RMSE TFMA measured for that model on the same rows in
the run that blessed it.
"""
import numpy as np
import pytest

from ratings import features
from tests.helpers import write_csv
from tests.pipeline_runs import PLANT_CONFIG, PipelineRun, gate, gate_check

LATER = 10 ** 8  # seconds added to span 2's timestamps: its ratings are the newest of each pair


def test_a_span_that_breaks_the_earlier_users_ratings_is_refused_on_their_earlier_eval_data(ratings_sample, tmp_path):
    data = tmp_path / "data"
    header, *rows = ratings_sample.read_text().splitlines()
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        (data / side_table).parent.mkdir(parents=True, exist_ok=True)
        (data / side_table).write_text((ratings_sample.parent / side_table).read_text())
    write_csv(data / "span-1" / features.RATINGS_FILE, header, rows)
    run = PipelineRun(tmp_path / "run", data, config=PLANT_CONFIG)

    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    summary = run.summary()
    assert summary.blessed and summary.span == 1
    assert "no earlier accepted data" in gate(summary, "yardstick")["checks"][0]["note"]
    blessed_rmse_on_span_1 = summary.metrics["root_mean_squared_error"]

    fields = [row.split(",") for row in rows]
    shuffled = np.random.default_rng(0).permutation([rating for _, _, rating, _ in fields])
    write_csv(data / "span-2" / features.RATINGS_FILE, header,
              [f"{user},{movie},{rating},{int(timestamp) + LATER}"
               for (user, movie, _, timestamp), rating in zip(fields, shuffled)])
    second = run()
    assert second.returncode == 3, second.stderr[-3000:]
    summary = run.summary()
    assert summary.span == 2 and summary.blessed is False and len(run.versions()) == 1
    # On the new span's own eval split the candidate looks better than the served model...
    rating = gate(summary, "rating")
    assert rating["passed"], rating
    assert summary.metrics["root_mean_squared_error"] < summary.baseline_metrics["root_mean_squared_error"]
    # ...but on span 1's eval split, accepted before, it is worse, and that decides.
    earlier = gate_check(summary, "yardstick", "RMSE on earlier accepted data")
    assert earlier["passed"] is False and earlier["value"] > earlier["reference"], earlier
    assert earlier["reference"] == pytest.approx(blessed_rmse_on_span_1, abs=1e-4)
    assert summary.decided_by == [f"yardstick: {earlier['note']}"] and earlier["note"].startswith("RMSE on span 1 (")
    assert second.stderr.strip().splitlines()[-1] == f"Not blessed: refused by {summary.decided_by[0]}"
