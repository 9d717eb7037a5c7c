"""The shipped Airflow DAG run by Airflow itself (`airflow dags test`) in a temp Airflow home, for
the e2e tests that schedule runs (requirements/airflow.txt, installed by `make test`)."""
import datetime
import json
import os
import subprocess
import sys

from pipeline import configs
from tests.pipeline_runs import Replay

DAG_FILE = os.path.join(os.path.dirname(configs.__file__), "airflow_dag.py")
# The DAG's last task and its XCom, as the README tells operators (not imported: importing the DAG
# file would configure Airflow in this process).
SUMMARY_TASK, EXIT_CODE = "run_summary", "exit_code"

# What Airflow recorded for one DAG run: its state, each task's, and the summary task's exit code.
RUN_PROBE = """
import json, sys
from airflow.models import DagRun, XCom
from airflow.utils.session import create_session
with create_session() as session:
    run = session.query(DagRun).filter_by(dag_id="movierec", run_id=sys.argv[1]).one()
    tasks = {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}
    code = XCom.get_one(run_id=sys.argv[1], dag_id="movierec", task_id=sys.argv[2], key=sys.argv[3], session=session)
    print(json.dumps({"state": run.state, "tasks": tasks, "exit_code": code}))
"""


class Airflow:
    """An Airflow home in a temp dir, the shipped DAG file linked into its dags folder, and a
    settings file (MOVIEREC_CONFIG) for the replay's data, pipeline root and serving dir."""

    def __init__(self, root, replay: Replay):
        self.home = root / "airflow"
        (self.home / "dags").mkdir(parents=True)
        os.symlink(DAG_FILE, self.home / "dags" / "movierec_dag.py")
        settings = root / "settings.yaml"
        settings.write_text(configs.to_yaml(replay.config))
        self.env = {**os.environ, "AIRFLOW_HOME": str(self.home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "MOVIEREC_CONFIG": str(settings),
                    "PYTHONWARNINGS": "ignore"}

    def __call__(self, *args, timeout=1800):
        return subprocess.run([sys.executable, "-m", "airflow", *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def python(self, script, *args):
        result = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=self.env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def migrate(self) -> None:
        """Creates Airflow's own database."""
        migrated = self("db", "migrate")
        assert migrated.returncode == 0, migrated.stderr[-3000:]

    def run(self, logical_date: datetime.datetime):
        """`airflow dags test movierec <date>`: (its result, the DAG run's id)."""
        return self("dags", "test", "movierec", logical_date.isoformat()), f"manual__{logical_date.isoformat()}"

    def recorded(self, run_id: str):
        return self.python(RUN_PROBE, run_id, SUMMARY_TASK, EXIT_CODE)


def days_ago(days: int) -> datetime.datetime:
    """A past day at 03:00 UTC, as a DAG run's logical date: Airflow's task runner refuses one in the future."""
    return (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)).replace(
        hour=3, minute=0, second=0, microsecond=0)


def first_day(root, spans, days_back: int):
    """An Airflow home for a replay of `spans` under `root`, span 1 landed and its DAG run, `days_back`
    days ago, finished: (replay, airflow, that day, the run's result, its run id)."""
    replay = Replay(root / "replay", spans)
    airflow = Airflow(root, replay)
    airflow.migrate()
    day = days_ago(days_back)
    replay.add_span(1)
    result, run_id = airflow.run(day)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    return replay, airflow, day, result, run_id
