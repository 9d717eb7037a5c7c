"""Accuracy: our pipeline against scikit-surprise's classics on the same MovieLens-100K rows.

    python -m benchmarks.accuracy [--splits random temporal]

For each split (random: numpy default_rng(0) 80/20; temporal: oldest 80% by timestamp for
training, newest 20% for testing) it writes train/ and eval/ folders, runs the full pipeline on
them (`movierec run`; TFMA's RMSE/MAE on eval, the Trainer's wall time as fit time), trains
BaselineOnly, SVD and SVD++ (random_state=0) on the same training rows, and prints one table.
Needs the benchmark extra: `pip install -r requirements/benchmarks.txt` (`make bench-accuracy`).
"""
import argparse
import csv
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from tabulate import tabulate

from ratings import features
from pipeline import configs, run_summary
from components.evaluation import MAE, RMSE

SPLITS = ("random", "temporal")
TRAIN_FRACTION = 0.8


def read_ratings(path: pathlib.Path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(reader)


def split_rows(rows, kind: str):
    """(train rows, test rows) as specified in the module docstring."""
    cut = int(len(rows) * TRAIN_FRACTION)
    if kind == "random":
        order = np.random.default_rng(0).permutation(len(rows))
    else:
        order = np.argsort([int(r[3]) for r in rows], kind="mergesort")
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]


def write_split(folder: pathlib.Path, source: pathlib.Path, header, train, test) -> None:
    """train/ and eval/ folders, which the pipeline keeps as its splits."""
    write_data(folder, source, header, {"train": train, "eval": test})


def write_data(folder: pathlib.Path, source: pathlib.Path, header, files) -> None:
    """A dataset folder: `files` {subfolder ("" for the folder itself): rows} as ratings files,
    and the side tables of `source` beside them."""
    for name, rows in files.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        with open(folder / name / features.RATINGS_FILE, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    for side_table in (features.MOVIES_FILE, features.USERS_FILE):
        if (source / side_table).exists():
            shutil.copy(source / side_table, folder / side_table)


def run_pipeline(work: pathlib.Path, data: pathlib.Path, base: configs.PipelineConfig) -> run_summary.RunSummary:
    """`movierec run` on the split's folders; the run's summary (RMSE, ranking, Trainer time)."""
    # The benchmark measures; it does not gate: the bounds are relaxed so every run finishes.
    config = base.replace(
        data=str(data), pipeline_root=str(work / "pipeline"), serving_dir=str(work / "serving"),
        evaluation=base.evaluation.ungated())
    config_file = work / "config.yaml"
    config_file.write_text(configs.to_yaml(config))
    result = subprocess.run([sys.executable, "-m", "movierec.cli", "run", "--config", str(config_file)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"pipeline failed on {data}:\n{result.stderr[-3000:]}")
    return run_summary.summarize(config)


def run_surprise(train, test):
    try:
        import surprise
    except ImportError:
        sys.exit("scikit-surprise is missing: pip install -r requirements/benchmarks.txt")
    reader = surprise.Reader(rating_scale=(1, 5))
    frame = pd.DataFrame({"user": [r[0] for r in train], "item": [r[1] for r in train],
                          "rating": [float(r[2]) for r in train]})
    trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
    testset = [(r[0], r[1], float(r[2])) for r in test]
    results = {}
    for name, algorithm in (("BaselineOnly", surprise.BaselineOnly(verbose=False)),
                            ("SVD", surprise.SVD(random_state=0)),
                            ("SVD++", surprise.SVDpp(random_state=0))):
        start = time.perf_counter()
        algorithm.fit(trainset)
        seconds = time.perf_counter() - start
        predictions = algorithm.test(testset)
        results[name] = (surprise.accuracy.rmse(predictions, verbose=False),
                         surprise.accuracy.mae(predictions, verbose=False), seconds)
    return results


def split_arguments(description: str, work: str) -> argparse.ArgumentParser:
    """The options of a benchmark on these splits: settings per split, data, work folder, splits."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=pathlib.Path, default=pathlib.Path("configs/movielens-100k.yaml"),
                        help="pipeline settings for the random split")
    parser.add_argument("--temporal-config", type=pathlib.Path,
                        default=pathlib.Path("configs/movielens-100k-temporal.yaml"),
                        help="pipeline settings for the temporal split")
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path("data/movielens-100k"))
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path(work))
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    return parser


def main() -> None:
    args = split_arguments(__doc__.splitlines()[0], "runs/benchmark-accuracy").parse_args()
    settings = {"random": args.config, "temporal": args.temporal_config}
    header, rows = read_ratings(args.data / features.RATINGS_FILE)

    table = []
    for kind in args.splits:
        train, test = split_rows(rows, kind)
        work = args.work / kind
        shutil.rmtree(work, ignore_errors=True)
        write_split(work / "data", args.data, header, train, test)
        summary = run_pipeline(work, work / "data", configs.load(settings[kind]))
        table.append((kind, f"movierec ({settings[kind].name})", summary.metrics[RMSE], summary.metrics[MAE],
                      summary.seconds["Trainer"]))
        for name, (rmse, mae, seconds) in run_surprise(train, test).items():
            table.append((kind, f"surprise {name}", rmse, mae, seconds))
        print(f"{kind}: {len(train):,} training / {len(test):,} test ratings", flush=True)
    print(tabulate(table, headers=["split", "model", "RMSE", "MAE", "fit s"], floatfmt=".4f"))


if __name__ == "__main__":
    main()
