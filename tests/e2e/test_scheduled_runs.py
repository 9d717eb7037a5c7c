"""Scheduled runs: MovieLens replayed as monthly spans through `movierec run`, run by run."""
import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from serving import contract
from pipeline import configs, report, run_summary
from tests.cli import MOVIEREC, movierec
from tests.conftest import write_csv

# Small and quick; a tolerance on the change threshold absorbs noise on tiny eval splits. The
# ranking gate is open: models this rough rank little better than random (test_ranking_gate.py).
REPLAY_CONFIG = """
hyperparameters: {epochs: 2, embedding_dim: 8}
evaluation: {rmse_upper_bound: 1.8, max_rmse_increase: 0.05, max_slice_rmse_increase: null,
             ndcg_lower_bound: 0.0, max_ndcg_decrease: 1.0}
rolling_spans: 3
"""
# A trainer that wrecks what it is given: Adam steps of ~1.0 throw even warm-started vectors
# far off (a tiny learning rate would not do: the warm start alone is as good as the last model).
WEAK_TRAINER = "hyperparameters: {epochs: 2, learning_rate: 1.0}\n"


class Replay:
    def __init__(self, root: pathlib.Path, spans: pathlib.Path):
        self.root, self.spans, self.data = root, spans, root / "data"
        self.data.mkdir(parents=True)
        for side_table in ("movies.csv", "users.csv"):
            shutil.copy(spans / side_table, self.data / side_table)
        self.config_file = root / "config.yaml"
        self.config_file.write_text(REPLAY_CONFIG)
        self.config = configs.load(self.config_file).replace(
            data=str(self.data), pipeline_root=str(root / "pipeline"), serving_dir=str(root / "serving"))

    def add_span(self, number: int, corrupt: bool = False):
        target = self.data / f"span-{number}"
        shutil.copytree(self.spans / f"span-{number}", target)
        if corrupt:  # a rating by a new user aged 150: it parses, but breaks the schema
            lines = (target / "ratings.csv").read_text().splitlines()
            write_csv(target / "ratings.csv", lines[0], lines[1:] + ["99999,1,4,880000000"])
            with open(self.data / "users.csv", "a") as users:
                users.write("99999,150,M,other,00000\n")

    def command(self):
        return ["run", "--data", self.data, "--config", self.config_file,
                "--pipeline-root", self.config.pipeline_root, "--serving-dir", self.config.serving_dir]

    def run(self, extra_config: str = ""):
        if extra_config:
            self.config_file.write_text(REPLAY_CONFIG + extra_config)
        return movierec(*self.command())

    def run_killed_during(self, component: str) -> int:
        """`movierec run`, SIGKILLed with its whole process group once `component`'s executor
        started (its log says "Going to run a new execution" after "Component <component> is
        running."); returns that execution's ID, which the kill leaves RUNNING in ML Metadata."""
        logs = pathlib.Path(self.config.pipeline_root) / "logs"
        earlier_logs = set(logs.glob("*.log"))
        stderr = self.root / f"killed-during-{component}.stderr"
        with open(stderr, "w") as err:
            process = subprocess.Popen([*MOVIEREC, *map(str, self.command())], stdout=subprocess.DEVNULL,
                                       stderr=err, start_new_session=True)
        started, deadline = False, time.monotonic() + 900
        try:
            while not started and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
                log = next(iter(set(logs.glob("*.log")) - earlier_logs), None)
                started = log is not None and "Going to run a new execution" in log.read_text().partition(
                    f"Component {component} is running.")[2]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert started and process.returncode == -signal.SIGKILL, stderr.read_text()[-3000:]
        store = run_summary.connect(self.config)
        running = [e.id for e in store.get_executions() if e.last_known_state == e.RUNNING]
        assert [run_summary.node_name(store, e) for e in running] == [component]
        assert self.leftovers(component, running[0])
        return running[0]

    def leftovers(self, component: str, execution: int):
        """The folders TFX gave one execution of `component` (outputs, scratch space)."""
        return list((pathlib.Path(self.config.pipeline_root) / component).glob(f"**/{execution}"))

    def versions(self):
        return contract.served_versions(self.config.push_base)

    def summary(self):
        return run_summary.summarize(self.config)


@pytest.fixture(scope="module")
def spans(ratings_sample, tmp_path_factory):
    dest = tmp_path_factory.mktemp("spans")
    result = movierec("data", "split-spans", ratings_sample, "--by", "month", "--dest", dest)
    assert result.returncode == 0, result.stderr
    assert "wrote 8 spans by month" in result.stdout
    return dest


def test_span_replay(spans, tmp_path):
    replay = Replay(tmp_path, spans)
    replay.add_span(1)
    first = replay.run()
    assert first.returncode == 0, first.stderr[-3000:]
    summary = replay.summary()
    assert summary.span == 1 and len(replay.versions()) == 1
    v1 = replay.versions()[0]
    report_html = pathlib.Path(report.reports_dir(replay.config)) / summary.run_id.replace(":", "-") / "report.html"
    assert f"<td>{summary.metrics['root_mean_squared_error']:.4f}</td>" in report_html.read_text()
    assert "Validation against the schema: passed" in report_html.read_text()
    assert (report_html.parent / "training_curve.png").is_file() and (report_html.parent / "movie_map.png").is_file()

    # A new span, and two runs SIGKILLed on it, during Transform and then during Trainer: each
    # leaves a RUNNING execution and partial outputs. The run after each marks that execution
    # abandoned and removes its outputs; the third run warm-starts from v1, is evaluated against
    # v1, and pushes once: v2.
    replay.add_span(2)
    killed = [replay.run_killed_during("Transform"), replay.run_killed_during("Trainer")]
    second = replay.run()
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Interrupted run: Trainer of run" in second.stderr
    summary = replay.summary()
    assert summary.span == 2 and summary.baseline_metrics and summary.blessed
    assert "Warm start: warm-started from" in second.stderr
    assert len(replay.versions()) == 2
    v2 = replay.versions()[1]
    store = run_summary.connect(replay.config)
    assert sorted(e.id for e in store.get_executions() if run_summary.ABANDONED in e.custom_properties) == killed
    # TFX records outputs only for an execution that completed, so no run could reuse theirs.
    assert not [e for e in store.get_events_by_execution_ids(killed) if e.type == e.OUTPUT]
    assert not replay.leftovers("Transform", killed[0]) and not replay.leftovers("Trainer", killed[1])
    runs = run_summary.run_ids(store, replay.config.pipeline_name)
    assert [run_summary.summarize(replay.config, run).components[component]
            for run, component in zip(runs[-3:-1], ("Transform", "Trainer"))] == ["abandoned", "abandoned"]

    # Nothing new: a cheap no-op, and the model is already served.
    again = replay.run()
    assert again.returncode == 0, again.stderr[-3000:]
    states = replay.summary().components
    assert {states[c] for c in ("RatingsExampleGen", "Transform", "Trainer")} == {"cached"}
    assert replay.versions() == [v1, v2]

    # A corrupted span is stopped at validation: nothing trained, nothing pushed.
    replay.add_span(3, corrupt=True)
    third = replay.run()
    assert third.returncode == 1
    assert "data validation found" in third.stderr and "feature 'age'" in third.stderr
    assert replay.summary().components["ValidationGate"] == "failed"
    assert replay.versions() == [v1, v2]

    # A weakened trainer on the next (valid) span is not blessed and not pushed; exit code 3.
    replay.add_span(4)
    fourth = replay.run(WEAK_TRAINER)
    assert fourth.returncode == 3, fourth.stderr[-3000:]
    summary = replay.summary()
    assert summary.span == 4 and summary.blessed is False
    assert any("vs the last blessed model" in note for note in summary.blessing_notes)
    assert replay.versions() == [v1, v2]

    # The history: every run, from ML Metadata, and the RMSE plot.
    history = movierec("report", "--pipeline-root", replay.config.pipeline_root, "--last", "10")
    assert history.returncode == 0, history.stderr
    lines = [line for line in history.stdout.splitlines() if line.startswith("20")]
    assert len(lines) == 7
    assert [line for line in lines if "did not finish: its run was killed" in line] == lines[1:3]
    assert (pathlib.Path(report.reports_dir(replay.config)) / report.HISTORY_PLOT).is_file()
