"""Two scheduled days under each orchestrator we ship: wall time per day, outcome, versions pushed.

    python -m benchmarks.orchestrators [--data data/movielens-100k] [--ratings 3000]
                                       [--orchestrators local,beam,airflow] [--config FILE ...]

The data's first `--ratings` ratings (0: all) are cut by month into spans, as the tests cut their
sample. For each orchestrator, in a pipeline root of its own, day 1 finds span 1 and day 2 finds
span 2 beside it: `local` and `beam` are `movierec run --runner local|beam`, `airflow` is
`airflow dags test movierec <date>` on the shipped DAG (requirements/airflow.txt installed, as
`make test` installs it), after `airflow db migrate` (timed on its own). A day's wall time includes
starting Python and importing TensorFlow, as a scheduler's run would; under Airflow it also includes
parsing the DAG file. The outcome is the exit code `movierec run` gives the run (read back from ML
Metadata, the same for every orchestrator). The load average is printed beside each orchestrator's
days: on a shared machine, compare the orchestrators within one run of this script.
"""
import argparse
import datetime
import os
import pathlib
import shutil
import subprocess
import sys
import time

from tabulate import tabulate

from ratings import features
from pipeline import configs, run_summary
from serving import contract

ORCHESTRATORS = ("local", "beam", "airflow")
DAG_FILE = pathlib.Path(configs.__file__).parent / "airflow_dag.py"
# Without --config: the sample trains a rough model quickly, and the gates only report (a model this
# rough ranks little better than random and does not beat the baselines), so both days push and
# the whole of a run, every gate included, is timed.
QUICK_SETTINGS = """
hyperparameters: {epochs: 2, embedding_dim: 8}
evaluation: {rmse_upper_bound: 1.8, max_rmse_increase: 0.05, max_slice_rmse_increase: null,
             max_relative_ndcg_decrease: null, ndcg_margin_over_popular: null, rmse_margin_over_bias_only: null,
             yardstick_max_relative_rmse_increase: null, yardstick_max_relative_ndcg_decrease: null}
"""


def _run(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env)


def _load() -> str:
    return "/".join(f"{load:.1f}" for load in os.getloadavg())


def _spans(args) -> pathlib.Path:
    """The data's first `--ratings` ratings cut by month: <work>/spans/span-<N>/ and side tables."""
    sample = args.work / "sample"
    sample.mkdir(parents=True)
    header, *rows = (args.data / features.RATINGS_FILE).read_text().splitlines()
    (sample / features.RATINGS_FILE).write_text("\n".join([header, *(rows[:args.ratings] if args.ratings else rows)])
                                                + "\n")
    spans = args.work / "spans"
    split = _run("-m", "movierec.cli", "data", "split-spans", sample / features.RATINGS_FILE, "--by", "month",
                 "--dest", spans)
    if split.returncode:
        sys.exit(split.stderr)
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        if (args.data / side_table).exists():
            shutil.copy(args.data / side_table, spans / side_table)
    return spans


def _settings(args, root: pathlib.Path, spans: pathlib.Path) -> configs.PipelineConfig:
    """A settings file for one orchestrator's days (absolute paths: Airflow needs them)."""
    data = root / "data"
    data.mkdir(parents=True)
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        if (spans / side_table).exists():
            shutil.copy(spans / side_table, data / side_table)
    if not args.config:
        (root / "quick.yaml").write_text(QUICK_SETTINGS)
    config = configs.PipelineConfig()
    for settings in args.config or [root / "quick.yaml"]:  # later files win, as with movierec --config
        config = configs.load(settings, config)
    config = config.replace(data=str(data), pipeline_root=str(root / "pipeline"),
                            serving_dir=str(root / "serving")).absolute()
    (root / "settings.yaml").write_text(configs.to_yaml(config))
    return config


def _days(orchestrator: str, root: pathlib.Path, spans: pathlib.Path, config: configs.PipelineConfig):
    """Runs day 1 and day 2; yields (what ran, wall s, process exit code, run id)."""
    settings = root / "settings.yaml"
    if orchestrator == "airflow":
        home = root / "airflow"
        (home / "dags").mkdir(parents=True)
        (home / "dags" / "movierec_dag.py").symlink_to(DAG_FILE)
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "MOVIEREC_CONFIG": str(settings),
               "PYTHONWARNINGS": "ignore"}
        start = time.perf_counter()
        migrated = _run("-m", "airflow", "db", "migrate", env=env)
        yield "airflow db migrate", time.perf_counter() - start, migrated.returncode, None
        # Past dates: Airflow's task runner refuses a logical date in the future.
        day1 = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)).replace(
            hour=3, minute=0, second=0, microsecond=0)
    for day in (1, 2):
        shutil.copytree(spans / f"span-{day}", pathlib.Path(config.data) / f"span-{day}")
        start = time.perf_counter()
        if orchestrator == "airflow":
            logical_date = (day1 + datetime.timedelta(days=day - 1)).isoformat()
            done = _run("-m", "airflow", "dags", "test", "movierec", logical_date, env=env)
            run_id = f"manual__{logical_date}"
        else:
            done = _run("-m", "movierec.cli", "run", "--config", settings, "--runner", orchestrator)
            run_id = None
        yield f"day {day}", time.perf_counter() - start, done.returncode, run_id
        if done.returncode and not run_summary.summarize(config, run_id):
            sys.exit(f"{orchestrator} day {day} left no run: {(done.stderr or done.stdout)[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path("data/movielens-100k"))
    parser.add_argument("--ratings", type=int, default=3000, help="the first N ratings (0: all)")
    parser.add_argument("--orchestrators", default=",".join(ORCHESTRATORS))
    parser.add_argument("--config", type=pathlib.Path, action="append",
                        help="settings files (default: quick settings for the sample, gates open)")
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path("runs/benchmark-orchestrators"))
    args = parser.parse_args()
    args.work = args.work.absolute()
    shutil.rmtree(args.work, ignore_errors=True)
    spans = _spans(args)

    rows = []
    for orchestrator in args.orchestrators.split(","):
        if orchestrator not in ORCHESTRATORS:
            sys.exit(f"--orchestrators: {orchestrator!r} is none of {', '.join(ORCHESTRATORS)}")
        root = args.work / orchestrator
        config = _settings(args, root, spans)
        load_before, total = _load(), 0.0
        for what, seconds, returncode, run_id in _days(orchestrator, root, spans, config):
            summary = run_summary.summarize(config, run_id) if what.startswith("day") else None
            if what.startswith("day"):
                total += seconds
            rows.append([orchestrator, what, f"{seconds:.0f}", returncode,
                         summary.outcome()[0] if summary else "", summary.span if summary else "",
                         len(contract.served_versions(config.push_base)) if summary else ""])
            print(" ".join(map(str, rows[-1])), flush=True)
        rows.append([orchestrator, "both days", f"{total:.0f}", "", "", "",
                     f"load {load_before} -> {_load()}"])
    print(tabulate(rows, headers=["orchestrator", "", "wall s", "process exit", "outcome", "span",
                                  "versions served"]))


if __name__ == "__main__":
    main()
