"""ML Metadata in a shared MariaDB database: runs, caching, warm start, baseline, run lock and
killed-run recovery against a real server (tests/mariadb.py), as two machines would share it."""
import dataclasses
import pathlib
import signal
import subprocess
import sys
import time

import yaml
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata, run_summary
from tests.cli import movierec
from tests.pipeline_runs import Replay


def metadata_settings(mariadb) -> str:
    """The `metadata:` section of a settings file for the test server."""
    return yaml.safe_dump({"metadata": dataclasses.asdict(mariadb.metadata())})


def artifact_ids(store, run_id: str, node: str, event_type, key: str):
    """IDs of the artifacts an execution of `node` in run `run_id` took in / gave out under `key`."""
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    (execution,) = [e for e in store.get_executions_by_context(run.id) if run_summary.node_name(store, e.id) == node]
    return [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
            if e.type == event_type and e.path.steps[0].key == key]


HOLD_LOCK = """
import pathlib, sys, time
from movierec.runlock import run_lock
from pipeline import configs
with run_lock(configs.load(pathlib.Path(sys.argv[1])), wait=sys.argv[2] == "wait"):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _hold(settings: pathlib.Path, wait: bool, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(settings), "wait" if wait else "", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_run_lock_is_a_named_lock_in_the_shared_database(mariadb, ratings_sample, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(metadata_settings(mariadb))
    holder = _hold(settings, wait=False, seconds=300)
    try:
        assert holder.stdout.readline().strip() == "held"
        # The lock is the database's: another pipeline root (another machine's) is refused too.
        refused = movierec("run", "--data", ratings_sample, "--config", settings,
                           "--pipeline-root", tmp_path / "elsewhere")
        assert refused.returncode == 4, refused.stderr[-3000:]
        assert (f"another run is using pipeline 'movierec' in mysql://movierec@127.0.0.1:{mariadb.port}/mlmd "
                f"(lock 'movierec/mlmd/movierec' held by database connection") in refused.stderr
        assert mariadb.query("SELECT IS_USED_LOCK('movierec/mlmd/movierec') IS NOT NULL") == ((1,),)
        waiter = _hold(settings, wait=True, seconds=0)
        # Waiting means blocked in the server's GET_LOCK (MariaDB's processlist state "User lock"),
        # not still importing: seen from the server, not assumed after a sleep.
        deadline = time.monotonic() + 120
        while mariadb.query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'") != ((1,),):
            assert waiter.poll() is None, waiter.communicate()
            assert time.monotonic() < deadline, "the waiter never reached GET_LOCK"
            time.sleep(0.2)
        assert waiter.poll() is None  # waiting for the holder
        holder.send_signal(signal.SIGKILL)  # a killed run: the server drops its connection's lock
        holder.wait()
        assert waiter.communicate(timeout=60)[0].strip() == "held" and waiter.returncode == 0
    finally:
        holder.kill()
        holder.wait()
    assert mariadb.query("SELECT IS_FREE_LOCK('movierec/mlmd/movierec')") == ((1,),)


def test_runs_share_ml_metadata_in_mariadb(mariadb, spans, tmp_path):
    """Two runs, and one killed between them, with ML Metadata in MariaDB: the second run of the
    same pipeline is refused while the first holds the database's lock; the killed run's Trainer
    is marked abandoned by the next run, which reuses the killed run's finished components from
    the cache, warm-starts from the first run's model and is evaluated against it."""
    replay = Replay(tmp_path, spans, metadata_settings(mariadb))
    assert replay.config.metadata.kind == "mysql"
    replay.add_span(1)
    earlier = replay.logs()
    first = replay.start("first")
    try:
        assert replay.wait_for_log(first, earlier), replay.stderr("first")[-3000:]
        concurrent = replay.run()
        assert concurrent.returncode == 4, concurrent.stderr[-3000:]
        assert "another run is using pipeline 'movierec' in mysql://" in concurrent.stderr
        assert first.wait(timeout=900) == 0, replay.stderr("first")[-3000:]
    finally:
        first.kill()
    (v1,) = replay.versions()
    # Everything went to the database: no SQLite file, and MLMD's own tables hold the runs.
    assert not pathlib.Path(replay.config.metadata_file).exists()
    assert mariadb.query("SELECT COUNT(*) FROM mlmd.Execution WHERE last_known_state = 3")[0][0] >= 10  # COMPLETE

    replay.add_span(2)
    killed = replay.run_killed_during("Trainer")
    second = replay.run()  # no --wait: the killed run's lock went with its connection
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Interrupted run: Trainer of run" in second.stderr
    assert "Warm start: warm-started from" in second.stderr
    summary = replay.summary()
    assert summary.span == 2 and summary.blessed and summary.baseline_metrics
    # Finished by the killed run on the same span, so served from the cache now.
    assert {summary.components[c] for c in ("RatingsExampleGen", "StatisticsGen", "Transform")} == {"cached"}
    assert summary.components["Trainer"] == "ran"
    assert replay.versions()[0] == v1 and len(replay.versions()) == 2
    store = metadata.connect(replay.config)
    assert [e.id for e in store.get_executions() if run_summary.ABANDONED in e.custom_properties] == [killed]
    assert not replay.leftovers("Trainer", killed)
    # The first run's model is what the second warm-started from and was evaluated against.
    runs = run_summary.run_ids(store, replay.config.pipeline_name)
    assert [run_summary.summarize(replay.config, run).components["Trainer"] for run in runs] == [
        "ran", "abandoned", "ran"]
    (first_model,) = artifact_ids(store, runs[0], "Trainer", metadata_store_pb2.Event.OUTPUT, "model")
    assert artifact_ids(store, runs[2], "Evaluator", metadata_store_pb2.Event.INPUT, "baseline_model") == [first_model]
    assert artifact_ids(store, runs[2], "Trainer", metadata_store_pb2.Event.INPUT, "base_model") == [first_model]
    assert store.get_artifacts_by_id([first_model])[0].uri in second.stderr  # "warm-started from <uri>"

    history = movierec("report", "--config", replay.config_file, "--pipeline-root", replay.config.pipeline_root)
    assert history.returncode == 0, history.stderr
    assert len([line for line in history.stdout.splitlines() if line.startswith("20")]) == 3
    assert "did not finish: its run was killed" in history.stdout
