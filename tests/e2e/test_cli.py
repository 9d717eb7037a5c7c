"""CLI errors are one clear line with a non-zero exit code; data commands write the canonical layout."""
import pytest

from tests.cli import movierec
from tests.helpers import write_csv


def test_run_with_missing_data_fails_in_one_line(tmp_path):
    result = movierec("run", "--data", tmp_path / "nothing.csv", "--pipeline-root", tmp_path / "p")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'nothing.csv'}: no such file or folder " \
                                    "(fetch data with `movierec data fetch`)"
    assert not (tmp_path / "p").exists()


def test_run_with_wrong_header_fails_before_the_pipeline_starts(tmp_path):
    data = write_csv(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp", ["1,2,3,4"])
    result = movierec("run", "--data", data, "--pipeline-root", tmp_path / "p")
    assert result.returncode == 1
    assert f"Error: {data}:1: header is 'userId,movieId,rating,timestamp'" in result.stderr
    assert not (tmp_path / "p").exists()


def test_run_with_an_empty_folder(tmp_path):
    result = movierec("run", "--data", tmp_path, "--pipeline-root", tmp_path / "p")
    assert result.returncode == 1
    assert f"{tmp_path}: no ratings*.csv files in this folder" in result.stderr


@pytest.mark.parametrize("flag", ["--pipeline-root", "--serving-dir"])
def test_run_with_a_folder_it_cannot_write_fails_before_the_pipeline_starts(tmp_path, flag):
    """A folder under a regular file cannot be created, even by root (for whom permission bits
    do not count): the run must say so up front, not fail after training."""
    data = write_csv(tmp_path / "ratings.csv", "user_id,movie_id,rating,timestamp", ["1,2,3,880000000"])
    (tmp_path / "file").write_text("")
    folders = {"--pipeline-root": tmp_path / "p", "--serving-dir": tmp_path / "s", flag: tmp_path / "file" / "x"}
    result = movierec("run", "--data", data, *[arg for pair in folders.items() for arg in pair])
    assert result.returncode == 1
    # In TensorFlow's words: the folder is created through the filesystems the pipeline writes with.
    assert result.stderr.strip() == (f"Error: {tmp_path / 'file' / 'x'}: cannot write there "
                                     f"({tmp_path / 'file'} is not a directory)")
    assert not (tmp_path / "p" / "metadata.sqlite").exists()


def test_data_import_reports_bad_rows_and_writes_nothing(tmp_path):
    src = write_csv(tmp_path / "u.data", "1\t2\t3\t4", ["1\t2\tfive\t5"])
    src.write_text("1\t2\t3\t4\n1\t2\tfive\t5\n")
    result = movierec("data", "import", "--format", "movielens-100k", src, "--dest", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {src}:2: field 'rating': not a number: 'five'"
    assert not (tmp_path / "out" / "ratings.csv").exists()


def test_data_import_writes_canonical_csv(tmp_path):
    src = tmp_path / "ratings.dat"
    src.write_text("1::10::5::978300760\n2::10::4::978300761\n")
    result = movierec("data", "import", "--format", "movielens-1m", src, "--dest", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "wrote 2 ratings (2 users, 1 movies)" in result.stdout
    assert (tmp_path / "out" / "ratings.csv").read_text().splitlines() == [
        "user_id,movie_id,rating,timestamp", "1,10,5,978300760", "2,10,4,978300761"]


@pytest.mark.parametrize("settings, message", [
    ("hyperparameters:\n  model: mff\n", "hyperparameters.model: must be one of mf, neumf, mf_autorec, got 'mff'"),
    ("hyperparameters:\n  embedding_dim: -8\n", "hyperparameters.embedding_dim: must be an integer of at least 1, got -8"),
    ("hyperparameters:\n  mlp_layers: [64, 0]\n",
     "hyperparameters.mlp_layers: must be a list of integers of at least 1, got [64, 0]"),
    ("hyperparameters:\n  learning_rate: fast\n", "hyperparameters.learning_rate: must be positive, got 'fast'"),
    ("hyperparameters:\n  blend_weight: 1.5\n", "hyperparameters.blend_weight: must be in [0, 1], got 1.5"),
    ("hyperparameters:\n  side_features: 'yes'\n", "hyperparameters.side_features: must be true or false, got 'yes'"),
    ("evaluation:\n  ranking_k: 0\n", "evaluation.ranking_k: must be an integer of at least 1, got 0"),
    ("hyperparameters:\n  epoch: 3\n", "unknown hyperparameters keys: ['epoch']"),
])
def test_config_names_the_file_and_key_of_a_bad_setting(tmp_path, settings, message):
    """`movierec config` reads settings as `movierec run` does: a bad one is refused there, in one
    line naming the file and key, not minutes into a run when the Trainer builds the model. The
    second file is the bad one, so the message must name it and not the first."""
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("hyperparameters:\n  epochs: 3\n")
    bad.write_text(settings)
    result = movierec("config", "--config", good, "--config", bad)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip().startswith(f"Error: {bad}: {message}") and "\n" not in result.stderr.strip()
