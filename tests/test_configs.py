"""Pipeline config: file overlays, validation of keys, input locations."""
import pytest

from pipeline import configs


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
])
def test_bad_config_is_rejected(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        configs.load(path)


def test_input_location_file_or_folder(tmp_path):
    (tmp_path / "ratings.csv").write_text("")
    assert configs.PipelineConfig(data=str(tmp_path / "ratings.csv")).input_location() == (
        str(tmp_path), "ratings.csv")
    assert configs.PipelineConfig(data=str(tmp_path)).input_location() == (
        str(tmp_path), configs.RATINGS_FILE_PATTERN)


def test_printed_config_loads_back_unchanged(tmp_path):
    config = configs.PipelineConfig().replace(
        beam_pipeline_args=("--direct_num_workers=2",),
        hyperparameters=configs.Hyperparameters(epochs=4))
    path = tmp_path / "config.yaml"
    path.write_text(configs.to_yaml(config))
    assert configs.load(path) == config
