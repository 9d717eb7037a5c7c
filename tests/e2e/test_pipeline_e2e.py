"""The whole pipeline through `movierec run` on a 3,000-rating MovieLens sample, in a temp dir."""
import math
import pathlib
import shutil

import pytest
import tensorflow as tf

from ratings import features
from components.model_gate import executor as model_gate
from pipeline import metadata, report
from pipeline.pipeline import MODEL_GATE
from serving import contract
from tests.cli import movierec
from tests.helpers import write_csv
from tests.pipeline_runs import PipelineRun, node_ids
from tests import helpers


def test_first_run_executes_every_component_and_pushes(trained_run):
    run, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    summary = run.summary()
    assert summary.components == {name: "ran" for name in node_ids(run.config)}
    assert sum(summary.rows.values()) == 3000 and set(summary.rows) == {"train", "eval"}
    assert summary.blessed and summary.pushed
    # One blessing says "blessed": the ModelGate's. TFMA's (no thresholds) carries no verdict, so
    # Kubeflow v2's resolvers, which select ModelBlessings by type and `blessed`, find only it.
    store = metadata.connect(run.config)
    verdicts = [(a.uri, a.custom_properties["blessed"].int_value) for a in store.get_artifacts_by_type("ModelBlessing")
                if "blessed" in a.custom_properties]
    assert len(store.get_artifacts_by_type("ModelBlessing")) == 2 and len(verdicts) == 1
    assert f"/{MODEL_GATE}/{model_gate.BLESSING}/" in verdicts[0][0] and verdicts[0][1] == 1
    assert summary.side_tables == {"movies": str(run.data / "movies.csv"), "users": str(run.data / "users.csv")}
    assert f"side tables joined: movies {run.data / 'movies.csv'}, users " in summary.render()
    # Infra validation served the candidate with the production deploy files before the push, and
    # one canary request per client signature was answered.
    assert summary.infra_blessed, summary.infra_note
    assert ("infra validation: passed - served by movierec serve with batching and warmup; canary requests "
            "to serving_default, regress, predict_rating, recommend, similar_movies, similar_users answered"
            ) in result.stdout
    assert 0 < summary.metrics["root_mean_squared_error"] < 1.6
    assert summary.metrics["example_count"] == summary.rows["eval"]
    assert len(run.versions()) == 1
    assert f"push: pushed as version {run.versions()[0]}" in result.stdout
    assert "Component Trainer is finished." in result.stderr  # progress is shown
    serving_dir = pathlib.Path(run.config.serving_dir)
    for deploy_file in ("models.config", "batching_parameters.txt", "monitoring.config",
                        "docker-compose.yaml", "kubernetes.yaml"):
        assert (serving_dir / deploy_file).is_file(), deploy_file
    assert 'base_path: "/models/movierec"' in (serving_dir / "models.config").read_text()
    # Evaluator slices, training curves and the embedding exports are part of every run.
    assert any(name.startswith("user_activity=") for name in summary.slices)
    assert any(name.startswith("movie_popularity=") for name in summary.slices)
    assert len(summary.history["val_rmse"]) == 3
    model_run = pathlib.Path(summary.model_run_dir)
    for exported in ("movie_vectors.tsv", "movie_metadata.tsv", "projector_config.pbtxt", "movie_map.png"):
        assert (model_run / exported).is_file(), exported
    assert "Toy Story" in (model_run / "movie_metadata.tsv").read_text()


def test_ranking_figures_appear_in_the_summary_the_report_and_the_history(trained_run):
    run, result = trained_run
    summary = run.summary()
    overall = summary.ranking_overall()
    assert overall["users"] > 0 and 0 < overall["ndcg"] <= 1 and 0 < overall["coverage"] <= 1
    assert (f"ranking top-10, relevant = eval movies, candidate: NDCG {overall['ndcg']:.4f}, "
            f"recall {overall['recall']:.4f}") in result.stdout
    assert "NDCG@10 by slice: user_activity=" in result.stdout
    # The gates' verdicts: no blessed model to compare with yet; the baselines reported beside it.
    assert f"ranking: passed - NDCG@10 {overall['ndcg']:.4f}: no blessed model yet to compare with" in result.stdout
    assert f"baselines: passed - NDCG@10 {overall['ndcg']:.4f} vs most popular " in result.stdout
    assert "yardstick: passed - no earlier accepted data" in result.stdout
    assert (f"blessed: yes - closest call rating: RMSE {summary.metrics['root_mean_squared_error']:.4f} <= bound 1.6"
            in result.stdout)
    html = (pathlib.Path(report.reports_dir(run.config)) / summary.run_id.replace(":", "-") / "report.html").read_text()
    assert "<h2>Ranking</h2>" in html and "<h2>Gates</h2>" in html
    for key in ("ndcg", "recall", "precision", "map", "coverage"):
        assert f"<td>{overall[key]:.4f}</td>" in html, key
    history = movierec("report", "--pipeline-root", run.config.pipeline_root)
    assert history.returncode == 0, history.stderr
    assert "NDCG@k" in history.stdout and f"{overall['ndcg']:.4f}" in history.stdout


def test_pushed_model_rates_known_and_unknown_users(trained_run, ratings_sample):
    run, _ = trained_run
    model = tf.saved_model.load(f"{run.config.push_base}/{run.versions()[0]}")
    serve = model.signatures["serving_default"]
    known_user, known_movie = ratings_sample.read_text().splitlines()[1].split(",")[:2]
    requests = [contract.rating_example(known_user, known_movie),
                contract.rating_example("no-such-user", known_movie),
                contract.rating_example("no-such-user", "no-such-movie")]
    ratings = serve(examples=tf.constant(requests))[features.LABEL_KEY].numpy()
    assert ratings.shape == (3,)
    assert all(math.isfinite(r) and 0.5 <= r <= 5.5 for r in ratings)
    assert "transform_features" in model.signatures


def test_second_run_on_same_data_is_cached_and_pushes_nothing_new(trained_run):
    run, _ = trained_run
    result = run()
    assert result.returncode == 0, result.stderr[-3000:]
    states = run.summary().components
    cached = ["RatingsExampleGen", "StatisticsGen", "ExampleValidator", "ValidationGate",
              "Transform", "Trainer"]
    assert {name: states[name] for name in cached} == {name: "cached" for name in cached}
    assert f"whose model is served as version {run.versions()[0]}" in result.stdout
    assert len(run.versions()) == 1


def test_out_of_range_side_feature_stops_at_validation(ratings_sample, tmp_path):
    """Rows that parse but break the schema (here a user aged 150) stop at ExampleValidator."""
    lines = ratings_sample.read_text().splitlines()
    data = write_csv(tmp_path / "data" / "ratings.csv", lines[0], lines[1:2000])
    shutil.copy(ratings_sample.parent / "movies.csv", data.parent / "movies.csv")
    users = (ratings_sample.parent / "users.csv").read_text().replace("\n196,49,", "\n196,150,")
    (data.parent / "users.csv").write_text(users)
    run = PipelineRun(tmp_path, data)
    result = run()
    assert result.returncode == 1
    assert "Error: data validation found" in result.stderr
    assert "feature 'age': Out-of-range values" in result.stderr
    states = run.summary().components
    assert states["ValidationGate"] == "failed"
    assert "Transform" not in states and "Pusher" not in states
    assert run.versions() == []


@pytest.mark.parametrize("bad_row, message", [
    ("5,6,great,881250949", "101: field 'rating': not a number: 'great'"),
    ("196,242,5,881250949", "101: field 'movie_id': duplicated row: user '196' already rated movie '242' on line 2"),
])
def test_bad_row_fails_naming_file_line_and_field(ratings_sample, tmp_path, bad_row, message):
    lines = ratings_sample.read_text().splitlines()
    data = write_csv(tmp_path / "data" / "ratings.csv", lines[0], lines[1:100] + [bad_row])
    run = PipelineRun(tmp_path, data)
    result = run()
    assert result.returncode == 1
    assert f"Error: {data}:{message}" in result.stderr
    assert run.versions() == []


def test_files_as_tools_write_them_go_through_movierec_run(trained_run, ratings_sample):
    """The session's run reads the sample's 3,000 ratings split over files written by the csv module,
    pandas, Excel's CSV UTF-8 layout and by hand (tests/conftest.py `tool_written_sample`), side
    tables beside them: every row, as csv.reader reads each file, is ingested, and both side tables
    are joined."""
    run, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(run.data.glob("ratings-*.csv"))
    assert [f.name for f in files] == sorted(f"ratings-{name}.csv" for name in helpers.WRITERS)
    expected = sum(len(helpers.referee(path)) for path in files)
    assert expected == len(ratings_sample.read_text().splitlines()) - 1 == 3000
    summary = run.summary()
    assert sum(summary.rows.values()) == expected
    assert f"(total {expected:,})" in result.stdout
    assert summary.side_tables == {"movies": str(run.data / "movies.csv"), "users": str(run.data / "users.csv")}
