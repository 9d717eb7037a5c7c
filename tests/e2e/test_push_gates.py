"""The push gates on a user's own data: the shipped MovieLens config on 60%, 80% and 100% of
MovieLens-100K, through `movierec run`, each size on a pipeline root of its own.

On each root, first a model whose lists rank below "most popular" (the shipped model with
`retrieval: rating`, which ranks niche films with a few high ratings first) must be refused by the
baselines gate, then the shipped model must be blessed and pushed, on the same rows (ExampleGen,
validation and Transform are cached from the first run). The refused run comes first, so neither
run has a last blessed model to be compared with: the baselines computed in the run decide.

Referees: scikit-surprise's BaselineOnly (the bias-only peer, fitted on exactly the run's training
rows: the gate's bias-only RMSE must be the peer's), TFMA's RMSE and the RankingEvaluator's NDCG
(the candidate figures the baselines gate compared must be theirs), and the planted truth that
rating-ranked lists score below most-popular on MovieLens (benchmarks/README.md, Ranking).
"""
import pathlib
import shutil

import numpy as np
import pytest

from ratings import features
from pipeline import configs, run_summary
from serving import contract
from tests.cli import movierec
from tests.helpers import REPO, write_csv
from tests.pipeline_runs import gate_check, rows_of

SHIPPED = REPO / "configs" / "movielens-100k.yaml"
RANK_BY_RATING = "hyperparameters: {retrieval: rating}\n"


def _subset(movielens_100k: pathlib.Path, folder: pathlib.Path, fraction: float) -> pathlib.Path:
    """A random `fraction` of MovieLens-100K's ratings (seeded), in file order, with the side tables."""
    lines = (movielens_100k / features.RATINGS_FILE).read_text().splitlines()
    rows = lines[1:]
    keep = np.sort(np.random.default_rng(0).permutation(len(rows))[:int(round(len(rows) * fraction))])
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        shutil.copy(movielens_100k / side_table, folder / side_table)
    return write_csv(folder / features.RATINGS_FILE, lines[0], [rows[i] for i in keep])


def _surprise_bias_only_rmse(train, test) -> float:
    """scikit-surprise's BaselineOnly (ALS, its defaults) fitted on `train`, RMSE on `test`."""
    import pandas
    import surprise

    reader = surprise.Reader(rating_scale=(min(r for *_, r in train), max(r for *_, r in train)))
    trainset = surprise.Dataset.load_from_df(
        pandas.DataFrame(train, columns=["u", "i", "r"]), reader).build_full_trainset()
    algo = surprise.BaselineOnly(bsl_options={"method": "als"}, verbose=False)
    algo.fit(trainset)
    predictions = algo.test([(u, i, r) for u, i, r in test])
    return float(surprise.accuracy.rmse(predictions, verbose=False))


@pytest.mark.parametrize("fraction", [0.6, 0.8, 1.0])
def test_shipped_config_refuses_lists_below_most_popular_and_blesses_the_shipped_model(
        movielens_100k, tmp_path, fraction):
    data = _subset(movielens_100k, tmp_path, fraction)
    base = configs.load(SHIPPED).replace(data=str(data), pipeline_root=str(tmp_path / "pipeline"),
                                         serving_dir=str(tmp_path / "serving"))
    rank_by_rating = tmp_path / "rank-by-rating.yaml"
    rank_by_rating.write_text(RANK_BY_RATING)
    command = ["run", "--data", data, "--config", SHIPPED, "--pipeline-root", base.pipeline_root,
               "--serving-dir", base.serving_dir]

    refused = movierec(*command, "--config", rank_by_rating)
    assert refused.returncode == 3, refused.stderr[-3000:]
    summary = run_summary.summarize(base)
    assert summary.blessed is False and not summary.pushed
    popular = gate_check(summary, "baselines", "NDCG@10 vs most popular")
    # Below most-popular outright, not only short of the margin; the note says so, and it is the
    # reason given as the run's last line.
    assert popular["passed"] is False and popular["value"] < popular["reference"], popular
    assert popular["value"] == pytest.approx(summary.ranking_overall()["ndcg"])
    assert "baselines" in summary.decided_by[0] and "most popular" in summary.decided_by[0]
    assert refused.stderr.strip().splitlines()[-1] == f"Not blessed: refused by {summary.decided_by[0]}"
    assert contract.served_versions(base.push_base) == []

    blessed = movierec(*command)
    assert blessed.returncode == 0, blessed.stderr[-3000:]
    summary = run_summary.summarize(base)
    assert summary.components["Transform"] == "cached" and summary.components["Trainer"] == "ran"
    assert summary.blessed and summary.pushed
    popular = gate_check(summary, "baselines", "NDCG@10 vs most popular")
    bias_only = gate_check(summary, "baselines", "RMSE vs bias-only")
    assert popular["passed"] and bias_only["passed"]
    # The candidate figures are the ones TFMA and the RankingEvaluator measured on these rows.
    assert popular["value"] == pytest.approx(summary.ranking_overall()["ndcg"])
    assert bias_only["value"] == pytest.approx(summary.metrics["root_mean_squared_error"], abs=1e-6)
    # The bias-only baseline is scikit-surprise's BaselineOnly on exactly the run's rows.
    train, test = rows_of(summary.examples, "train"), rows_of(summary.examples, "eval")
    assert (len(train), len(test)) == (summary.rows["train"], summary.rows["eval"])
    assert bias_only["reference"] == pytest.approx(_surprise_bias_only_rmse(train, test), abs=1e-6)
    # The summary shows each baseline beside the candidate.
    assert f"most popular {popular['reference']:.4f}" in blessed.stdout
    assert f"bias-only {bias_only['reference']:.4f}" in blessed.stdout
