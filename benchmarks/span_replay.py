"""Span replay: a ratings history cut into spans and fed to `movierec run` one span at a time.

    python -m benchmarks.span_replay [--data data/movielens-100k] [--by month] [--runs 8]

What a scheduled deployment would have seen: each run finds one more span in the data root,
trains on the rolling window of the newest spans (warm-started from the last blessed model),
is evaluated against that model, and pushes only if it is at least as good. Prints, per run,
the wall time and exit code, then `movierec report`'s table (span, ratings, RMSE, blessed,
pushed version) from ML Metadata.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys
import time

from tabulate import tabulate

from ratings import features
from pipeline import configs, report


def movierec(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movierec.cli", *map(str, args)],
                          capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path("data/movielens-100k"))
    parser.add_argument("--config", type=pathlib.Path, default=pathlib.Path("configs/movielens-100k.yaml"))
    parser.add_argument("--by", choices=("day", "week", "month"), default="month")
    parser.add_argument("--runs", type=int, default=0, help="stop after this many spans (0: all)")
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path("runs/benchmark-span-replay"))
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    spans, data = args.work / "spans", args.work / "data"
    split = movierec("data", "split-spans", args.data / features.RATINGS_FILE, "--by", args.by, "--dest", spans)
    if split.returncode:
        sys.exit(split.stderr)
    print(split.stdout.strip())
    data.mkdir(parents=True)
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        if (args.data / side_table).exists():
            shutil.copy(args.data / side_table, data / side_table)
    numbers = sorted(int(p.name.split("-")[1]) for p in spans.glob("span-*"))
    if args.runs:
        numbers = numbers[: args.runs]
    config = configs.load(args.config).replace(
        data=str(data), pipeline_root=str(args.work / "pipeline"), serving_dir=str(args.work / "serving"))
    timings = []
    for number in numbers:
        shutil.copytree(spans / f"span-{number}", data / f"span-{number}")
        start = time.perf_counter()
        run = movierec("run", "--data", data, "--config", args.config,
                       "--pipeline-root", config.pipeline_root, "--serving-dir", config.serving_dir)
        timings.append((number, f"{time.perf_counter() - start:.0f}", run.returncode,
                        (run.stderr.strip().splitlines() or [""])[-1][:100]))
        print(f"span {number}: exit {run.returncode} in {timings[-1][1]} s", flush=True)
    print(tabulate(timings, headers=["span added", "wall s", "exit", "last line"]))
    rows, plot = report.history(config, len(numbers))
    print(tabulate(rows, headers=report.HISTORY_HEADERS))
    print(f"RMSE across runs: {plot}")


if __name__ == "__main__":
    main()
