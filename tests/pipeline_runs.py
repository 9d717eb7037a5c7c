"""Running the pipeline through the real `movierec run` command, in a temp dir per run."""
import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

from ml_metadata.proto import metadata_store_pb2

from components import rows
from pipeline import configs, metadata, run_summary
from pipeline.pipeline import LOCAL, create_pipeline
from serving import contract
from tests.cli import MOVIEREC, movierec
from tests.helpers import write_csv

# A small sample trains a rough model, worse than the baselines: its lists are little better than
# random (NDCG@10 ~0.02 vs ~0.007, most popular ~0.05), so the baselines gate only reports here;
# the shipped config's gates have their own runs (test_push_gates.py). The absolute bound stays.
# The head adds recent popularity (configs/movielens-100k-temporal.yaml does), so the runs that
# share this config carry the ratings' dates from ExampleGen to both heads (test_seen.py checks them).
SMALL_RUN_CONFIG = """
hyperparameters: {epochs: 3, embedding_dim: 8, retrieval_recency_weight: 1.0, retrieval_recency_days: 30}
evaluation: {rmse_upper_bound: 1.6, ndcg_margin_over_popular: null, rmse_margin_over_bias_only: null}
"""
# Spans of the sample where the candidate must fit what it is given (test_yardstick.py): enough
# steps to move off the warm start; the baselines only report (the sample is too small to beat them).
PLANT_CONFIG = """
hyperparameters: {epochs: 10, embedding_dim: 8, learning_rate: 0.02}
evaluation: {ndcg_margin_over_popular: null, rmse_margin_over_bias_only: null}
rolling_spans: 2
"""


def gate(summary: run_summary.RunSummary, name: str) -> dict:
    """The verdict of the gate `name` in a run's summary."""
    found = [verdict for verdict in summary.gates if verdict["gate"] == name]
    assert found, f"no gate {name!r} among {[v['gate'] for v in summary.gates]}"
    return found[0]


def gate_check(summary: run_summary.RunSummary, gate_name: str, check: str) -> dict:
    """One check of a gate's verdict, by name ("NDCG@10 vs most popular")."""
    checks = gate(summary, gate_name)["checks"]
    found = [c for c in checks if c["name"] == check]
    assert found, f"no check {check!r} in gate {gate_name!r}: {[c['name'] for c in checks]}"
    return found[0]


def rows_of(examples, split: str):
    """[(user, movie, rating)] of one split of an Examples artifact."""
    read = rows.read_split(examples, split)
    return list(zip(read.users.astype(str), read.movies.astype(str), read.ratings.astype(float)))


# The model gates whose verdicts the ModelGate combines (pipeline/pipeline.py).
GATES = frozenset({"RatingGate", "RankingEvaluator", "Baselines", "Yardstick"})


def node_ids(config: configs.PipelineConfig, orchestrator: str = LOCAL) -> set:
    """The node IDs of the pipeline these settings build: the pipeline decides, not a list here
    (a folder of spans adds "rolling_span_window")."""
    return {node.id for node in create_pipeline(config, orchestrator).components}


def resolver_ids(config: configs.PipelineConfig, orchestrator: str = LOCAL) -> set:
    """The resolver nodes among them: they look artifacts up and make none, so nothing of theirs is cached."""
    return {node.id for node in create_pipeline(config, orchestrator).components if type(node).__name__ == "Resolver"}


def execution_states(config: configs.PipelineConfig, run_id: str) -> dict:
    """{node: execution state} of one run (any orchestrator's run context), straight from ML Metadata."""
    store = metadata.connect(config)
    run = run_summary.run_context(store, config.pipeline_name, run_id)
    return {run_summary.node_name(store, e.id): metadata_store_pb2.Execution.State.Name(e.last_known_state)
            for e in store.get_executions_by_context(run.id)}


def event_artifacts(config: configs.PipelineConfig, run_id: str, node: str, event_type, key: str) -> list:
    """IDs of the artifacts a node of a run read (Event.INPUT) or wrote (Event.OUTPUT) under a key."""
    store = metadata.connect(config)
    run = run_summary.run_context(store, config.pipeline_name, run_id)
    (execution,) = [e for e in store.get_executions_by_context(run.id) if run_summary.node_name(store, e.id) == node]
    return sorted(e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == event_type and e.path.steps[0].key == key)


def artifact_ids(config: configs.PipelineConfig) -> set:
    """Every artifact ML Metadata holds: a run that made none leaves this unchanged."""
    return {a.id for a in metadata.connect(config).get_artifacts()}


def file_tree(folder) -> dict:
    """Every file under a folder, with its size and modification time: a run that wrote none leaves this unchanged."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in pathlib.Path(folder).rglob("*") if p.is_file()}


class PipelineRun:
    """One `movierec run` invocation with its own pipeline root and serving dir."""

    def __init__(self, root: pathlib.Path, data: pathlib.Path, *extra, config: str = SMALL_RUN_CONFIG):
        self.root, self.data, self.extra = root, data, extra
        self.config_file = root / "config.yaml"
        root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config)
        self.config = configs.load(self.config_file).replace(
            data=str(data), pipeline_root=str(root / "pipeline"), serving_dir=str(root / "serving"))

    def __call__(self):
        return movierec("run", "--data", self.data, "--config", self.config_file,
                        "--pipeline-root", self.config.pipeline_root,
                        "--serving-dir", self.config.serving_dir, *self.extra)

    def versions(self):
        return contract.served_versions(self.config.push_base)

    def summary(self) -> run_summary.RunSummary:
        return run_summary.summarize(self.config)




# Small and quick; tolerances on the comparisons with the last blessed model absorb noise on tiny
# eval splits (~75 ratings a span). The ranking gates only report: models this rough rank little
# better than random (test_ranking_gate.py).
REPLAY_CONFIG = """
hyperparameters: {epochs: 2, embedding_dim: 8}
evaluation: {rmse_upper_bound: 1.8, max_rmse_increase: 0.05, max_slice_rmse_increase: null,
             max_relative_ndcg_decrease: null, ndcg_margin_over_popular: null, rmse_margin_over_bias_only: null,
             yardstick_max_relative_rmse_increase: 0.05, yardstick_max_relative_ndcg_decrease: null}
rolling_spans: 3
"""


def made_once(folder: pathlib.Path, make) -> dict:
    """`make(folder / "made")`'s result (JSON-able), made once for every process that asks during
    a session: the first takes `folder`/.lock, makes it and writes the result beside it; the others
    wait on the lock and read that. (Under pytest-xdist each worker builds its own session
    fixtures; this is how two workers share one pipeline run.) A `make` that raised left no result,
    so the next process to ask makes it again, from an empty folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / "result.json"
        if not done.exists():
            shutil.rmtree(folder / "made", ignore_errors=True)
            done.write_text(json.dumps(make(folder / "made")))
        return json.loads(done.read_text())


class AcceptedSpan:
    """Span 1 of the `spans` fixture through `movierec run` with REPLAY_CONFIG (accepted, pushed):
    where the LocalDagRunner replays begin (tests/conftest.py `accepted_span_1`, made once per
    session). Each replay starts from a copy (`Replay(..., start=...)`), so none sees another's runs;
    the copy's ML Metadata names this folder's artifacts, which no run changes."""

    def __init__(self, folder: pathlib.Path, spans: pathlib.Path):
        def first_run(root: pathlib.Path) -> dict:
            replay = Replay(root, spans)
            replay.add_span(1)
            result = replay.run()
            return {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}

        self.root = folder / "made"
        made = made_once(folder, first_run)
        self.result = subprocess.CompletedProcess(["movierec", "run"], made["returncode"], made["stdout"],
                                                  made["stderr"])


class Replay:
    """`movierec run` on a data folder that gains one span at a time; `settings` (YAML) are added
    to every run's config."""

    def __init__(self, root: pathlib.Path, spans: pathlib.Path, settings: str = "", args=(),
                 start: AcceptedSpan = None):
        """`args`: more `movierec run` flags for every run (e.g. --runner beam). `start`: begin with
        span 1 already run (a copy of its data, pipeline root, ML Metadata and serving dir)."""
        self.root, self.spans, self.data, self.settings, self.args = root, spans, root / "data", settings, args
        if start is None:
            self.data.mkdir(parents=True)
            for side_table in ("movies.csv", "users.csv"):
                shutil.copy(spans / side_table, self.data / side_table)
        else:
            shutil.copytree(start.root, root, dirs_exist_ok=True)
        self.config_file = root / "config.yaml"
        self.config_file.write_text(REPLAY_CONFIG + settings)
        self.config = configs.load(self.config_file).replace(
            data=str(self.data), pipeline_root=str(root / "pipeline"), serving_dir=str(root / "serving"))

    def add_span(self, number: int, corrupt: bool = False, rating=None):
        """Span `number` lands. `corrupt`: with a row that breaks the schema; `rating`: each rating
        replaced by rating(old rating), schema-valid but drifted (an upstream bug, another scale)."""
        target = self.data / f"span-{number}"
        shutil.copytree(self.spans / f"span-{number}", target)
        if rating is not None:
            header, *lines = (target / "ratings.csv").read_text().splitlines()
            assert header == "user_id,movie_id,rating,timestamp"
            write_csv(target / "ratings.csv", header, [
                ",".join([*fields[:2], f"{rating(float(fields[2])):g}", fields[3]])
                for fields in (line.split(",") for line in lines)])
        if corrupt:  # a rating by a new user aged 150: it parses, but breaks the schema
            lines = (target / "ratings.csv").read_text().splitlines()
            write_csv(target / "ratings.csv", lines[0], lines[1:] + ["99999,1,4,880000000"])
            with open(self.data / "users.csv", "a") as users:
                users.write("99999,150,M,other,00000\n")

    def command(self):
        return ["run", "--data", self.data, "--config", self.config_file,
                "--pipeline-root", self.config.pipeline_root, "--serving-dir", self.config.serving_dir, *self.args]

    def run(self, extra_config: str = ""):
        if extra_config:
            self.config_file.write_text(REPLAY_CONFIG + self.settings + extra_config)
        return movierec(*self.command())

    def logs(self):
        """The run logs so far; each run writes its own once it holds the run lock."""
        return set((pathlib.Path(self.config.pipeline_root) / "logs").glob("*.log"))

    def start(self, name: str, *flags) -> subprocess.Popen:
        """`movierec run` in the background, in a process group of its own; stderr to <root>/<name>.stderr."""
        with open(self.root / f"{name}.stderr", "w") as err:
            return subprocess.Popen([*MOVIEREC, *map(str, self.command()), *flags], stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)

    def stderr(self, name: str) -> str:
        return (self.root / f"{name}.stderr").read_text()

    def wait_for_log(self, process: subprocess.Popen, earlier, until=lambda text: True) -> bool:
        """Waits until the log of `process`'s run (the one new since `earlier`) satisfies `until`;
        False if the process ended first."""
        deadline = time.monotonic() + 900
        while process.poll() is None and time.monotonic() < deadline:
            log = next(iter(self.logs() - earlier), None)
            if log is not None and until(log.read_text()):
                return True
            time.sleep(0.5)
        return False

    def run_killed_during(self, component: str) -> int:
        """`movierec run`, SIGKILLed with its whole process group once `component`'s executor
        started (its log says "Going to run a new execution" after "Component <component> is
        running."); returns that execution's ID, which the kill leaves RUNNING in ML Metadata."""
        name = f"killed-during-{component}"
        earlier = self.logs()
        process = self.start(name)
        try:
            started = self.wait_for_log(process, earlier, lambda text: "Going to run a new execution" in text.partition(
                f"Component {component} is running.")[2])
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert started and process.returncode == -signal.SIGKILL, self.stderr(name)[-3000:]
        store = metadata.connect(self.config)
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
