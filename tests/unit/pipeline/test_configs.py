"""Pipeline config: file overlays, validation of keys, input locations."""
import pytest

from pipeline import configs
from tests.helpers import REPO


def test_yaml_overlay_keeps_unset_defaults(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("serving_dir: /srv/models\nhyperparameters:\n  epochs: 3\n"
                    "evaluation:\n  rmse_upper_bound: 1.2\nbeam_pipeline_args: [--direct_num_workers=2]\n")
    config = configs.load(path)
    assert config.serving_dir == "/srv/models"
    assert config.hyperparameters.epochs == 3
    assert config.hyperparameters.embedding_dim == configs.PipelineConfig().hyperparameters.embedding_dim
    assert config.evaluation.rmse_upper_bound == 1.2
    assert config.beam_pipeline_args == ("--direct_num_workers=2",)
    assert config.push_base == "/srv/models/movierec"


@pytest.mark.parametrize("text, message", [
    ("epochs: 3\n", "unknown config keys: \\['epochs'\\]"),
    ("hyperparameters:\n  epoch: 3\n", "unknown hyperparameters keys: \\['epoch'\\]"),
    ("- a\n- b\n", "expected a mapping"),
    ("evaluation: {ndcg_lower_bound: 1.5}\n", "evaluation.ndcg_lower_bound: must be in \\[0, 1\\], or null \\(off\\), got 1.5"),
    ("evaluation: {max_relative_ndcg_decrease: -0.1}\n",
     "evaluation.max_relative_ndcg_decrease: must be a fraction in \\[0, 1\\], or null \\(not gated\\), got -0.1"),
    ("evaluation: {ndcg_margin_over_popular: 10}\n", "evaluation.ndcg_margin_over_popular: must be a fraction in \\(-1, 1\\)"),
    ("evaluation: {rmse_margin_over_bias_only: '2%'}\n", "evaluation.rmse_margin_over_bias_only: .* got '2%'"),
    ("evaluation: {yardstick_max_relative_rmse_increase: true}\n", "evaluation.yardstick_max_relative_rmse_increase: "),
    ("evaluation: {min_slice_examples: 0}\n", "evaluation.min_slice_examples: must be an integer of at least 1, got 0"),
    ("evaluation: {ranking_k: 0}\n", "evaluation.ranking_k: must be an integer of at least 1, got 0"),
    ("evaluation: {max_ndcg_decrease: 0.01}\n", "unknown evaluation keys: \\['max_ndcg_decrease'\\]"),
    ("drift: {rating_jds: 0.1}\n", "unknown drift keys: \\['rating_jds'\\]"),
    ("drift: {rating_jsd: 1.5}\n", "drift.rating_jsd: must be in \\(0, 1\\] or null \\(off\\), got 1.5"),
    ("drift: {user_id_linf: 0}\n", "drift.user_id_linf: must be in \\(0, 1\\] or null \\(off\\), got 0"),
    ("drift: {user_id_linf: high}\n", "drift.user_id_linf: must be in \\(0, 1\\] or null \\(off\\), got 'high'"),
    ("drift: {min_examples_ratio: -1}\n", "drift.min_examples_ratio: must be a positive ratio or null \\(off\\), got -1"),
    ("drift: {min_examples_ratio: 2, max_examples_ratio: 1}\n",
     "drift.min_examples_ratio: 2 is above drift.max_examples_ratio 1"),
    ("drift: {accept: 1}\n", "drift.accept: must be true or false, got 1"),
    ("drift: 3\n", "drift: expected a mapping of settings, got 3"),
    ("rolling_spans: 0\n", "config.rolling_spans: must be an integer of at least 1, got 0"),
    ("enable_cache: 'no'\n", "config.enable_cache: must be true or false, got 'no'"),
    ("beam_pipeline_args: [direct_num_workers=2]\n", "config.beam_pipeline_args: must be a list of --flag=value strings"),
    ("hyperparameters: {mlp_layers: 5}\n", "hyperparameters.mlp_layers: must be a list of integers of at least 1, got 5"),
    ("hyperparameters: {epochs: true}\n", "hyperparameters.epochs: must be an integer of at least 1, got True"),
    ("hyperparameters: {autorec_ema: 1}\n", "hyperparameters.autorec_ema: must be in \\[0, 1\\), got 1"),
    ("hyperparameters: {learning_rate_decay: linear}\n",
     "hyperparameters.learning_rate_decay: must be one of constant, cosine, got 'linear'"),
    ("hyperparameters: {retrieval_popularity_discount: -0.1}\n",
     "hyperparameters.retrieval_popularity_discount: must be 0 or more, got -0.1"),
    ("evaluation: {user_activity_bounds: [20, 10]}\n", "evaluation.user_activity_bounds: must be a list of increasing"),
])
def test_bad_config_is_rejected(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{path}: {message}"):
        configs.load(path)


def test_input_location_file_folder_or_given_splits(tmp_path):
    (tmp_path / "ratings.csv").write_text("")
    assert configs.PipelineConfig(data=str(tmp_path / "ratings.csv")).input_location() == (
        str(tmp_path), {"single_split": "ratings.csv"})
    assert configs.PipelineConfig(data=str(tmp_path)).input_location() == (
        str(tmp_path), {"single_split": "ratings*.csv"})
    (tmp_path / "train").mkdir()
    (tmp_path / "eval").mkdir()
    assert configs.PipelineConfig(data=str(tmp_path)).input_location() == (
        str(tmp_path), {"train": "train/ratings*.csv", "eval": "eval/ratings*.csv"})


def test_printed_config_loads_back_unchanged(tmp_path):
    config = configs.PipelineConfig().replace(
        beam_pipeline_args=("--direct_num_workers=2",),
        hyperparameters=configs.Hyperparameters(epochs=4))
    path = tmp_path / "config.yaml"
    path.write_text(configs.to_yaml(config))
    assert configs.load(path) == config


def test_eval_config_has_slices_and_no_thresholds():
    """TFMA measures; the rating gate judges (a TFMA threshold would make its blessing one that
    Kubeflow v2's resolvers take for the ModelGate's, see test_model_gate.py)."""
    from pipeline.pipeline import eval_config

    config = eval_config()
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["user_activity"], ["movie_popularity"]]
    assert [m.class_name for m in config.metrics_specs[0].metrics] == ["ExampleCount", "MeanAbsoluteError",
                                                                      "RootMeanSquaredError"]
    assert not any(m.HasField("threshold") or m.per_slice_thresholds for m in config.metrics_specs[0].metrics)


def test_every_gate_setting_can_be_turned_off_for_benchmarks():
    ungated = configs.EvaluationConfig().ungated()
    assert ungated.ranking_k == 10 and ungated.min_slice_examples == 1000
    assert {getattr(ungated, name) for name in ("rmse_upper_bound", "max_rmse_increase", "ndcg_lower_bound",
                                                "max_relative_ndcg_decrease", "ndcg_margin_over_popular",
                                                "rmse_margin_over_bias_only", "yardstick_max_relative_rmse_increase",
                                                "yardstick_max_relative_ndcg_decrease")} == {None}


@pytest.mark.parametrize("name", ["movielens-100k", "movielens-100k-temporal", "synthetic-scale"])
def test_shipped_configs_gate_on_baselines_not_on_absolute_bounds(name):
    evaluation = configs.load(REPO / "configs" / f"{name}.yaml").evaluation
    assert evaluation.ndcg_lower_bound is None and evaluation.rmse_upper_bound is None
    assert evaluation.ndcg_margin_over_popular is not None and evaluation.rmse_margin_over_bias_only is not None


def test_schema_import_reruns_when_the_schema_content_changes(tmp_path):
    from components.schema_import import CONTENT_DIGEST, SchemaImport

    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "rating" type: FLOAT }\n')
    before = SchemaImport(str(schema)).exec_properties
    schema.write_text('feature { name: "rating" type: INT }\n')
    after = SchemaImport(str(schema)).exec_properties
    # Same path, new content: a new cache key, so TFX runs the import again.
    assert before["schema_file"] == after["schema_file"] and before[CONTENT_DIGEST] != after[CONTENT_DIGEST]


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory):
    """A copy of every package the code digest covers, to edit."""
    import shutil

    from components import code_version
    root = tmp_path_factory.mktemp("code")
    for package in code_version.PACKAGES:
        source, target = code_version.REPO / package, root / package
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_file():
            shutil.copy(source, target)
        else:
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return root


# One file of each package whose code a component runs, nested folders included: an edit to any
# of them must change the digest, or TFX would serve the old code's outputs from its cache.
@pytest.mark.parametrize("edited", ["models/rating/model.py", "models/export.py", "components/example_gen/executor.py",
                                    "components/pusher/executor.py", "ratings/records.py",
                                    "serving/contract.py", "ratings/schema/__init__.py"])
def test_an_edit_anywhere_in_component_code_changes_the_digest(code_copy, edited):
    from components import code_version
    before = code_version.digest(code_copy)
    assert before == code_version.digest()
    original = (code_copy / edited).read_text()
    (code_copy / edited).write_text(original + "# an edit\n")
    try:
        assert code_version.digest(code_copy) != before
    finally:
        (code_copy / edited).write_text(original)


def test_the_digest_reaches_the_cache_keys_of_the_components_that_run_our_code(tmp_path):
    import json

    from components import code_version
    from models.hyperparameters import HYPERPARAMETERS, Hyperparameters
    from pipeline.pipeline import create_pipeline

    config = configs.PipelineConfig(data=str(tmp_path), pipeline_root=str(tmp_path / "root"),
                                    serving_dir=str(tmp_path / "serving"))
    nodes = {node.id: node for node in create_pipeline(config).components}
    for name in ("Transform", "Trainer"):
        assert json.loads(nodes[name].exec_properties["custom_config"])[code_version.KEY] == code_version.digest()
    assert code_version.digest() in nodes["RatingsExampleGen"].exec_properties["custom_config"]
    trainer_config = json.loads(nodes["Trainer"].exec_properties["custom_config"])
    assert Hyperparameters.from_dict(trainer_config[HYPERPARAMETERS]) == config.hyperparameters


@pytest.mark.parametrize("name", ["local", "dataflow", "flink", "spark", "portable"])
def test_beam_arg_sets_are_valid_beam_options(name):
    """Every argument in configs/beam/*.yaml is one Beam knows (no typo silently dropped)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(configs.load(REPO / "configs" / "beam" / f"{name}.yaml").beam_pipeline_args)
    known = set(PipelineOptions([]).get_all_options())
    parsed = PipelineOptions(args).get_all_options(retain_unknown_options=True)
    assert set(parsed) - known == set()
    if name != "local":
        assert parsed["setup_file"] == "./setup.py"
        assert parsed["runner"] in ("DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
    if parsed.get("runner") in ("FlinkRunner", "SparkRunner", "PortableRunner"):
        # Beam 2.59's PortableRunner.JobServiceHandle.run gives the job's state stream this
        # deadline; Beam's default of 60 s failed the first Transform job on the portable runner.
        assert int(parsed["job_server_timeout"]) >= 3600
