"""Rating noise: how far fits of the same rows differ in RMSE, against the eval split's own noise.

    python -m benchmarks.rating_noise --config CONFIG.yaml --run PIPELINE_ROOT

Why: the rating gate (components/rating_gate) refuses a candidate whose RMSE on the eval rows is
more than `evaluation.max_rmse_increase` above the last blessed model's on the same rows. With
the allowance at 0 a retrained model that differs only by training noise (thread scheduling,
another seed) is refused half the time, whatever else it improves. This prints what the allowance
must clear: every run's judged model in the pipeline root (the Trainer's) scored on the eval split
of the latest run, and for each pair of models the RMSE difference beside its paired standard
error on those rows (from the per-rating squared errors of both models, which share the rows'
noise: sd(e1^2 - e2^2) / sqrt(n), over RMSE1 + RMSE2 by the delta method), and the standard
error of one model's RMSE (what an unpaired comparison would have to allow). Runs whose data
differ from the latest run's (another row count) are left out: their models are not fits of the
same rows.
"""
import argparse
import itertools

import numpy as np
import tensorflow as tf
from tabulate import tabulate
from tfx.utils import path_utils

from components import rows
from components.yardstick.executor import predict_ratings
from pipeline import configs, metadata, run_summary


def squared_errors(model_dir: str, test: rows.Rows) -> np.ndarray:
    predicted = predict_ratings(tf.saved_model.load(model_dir), test.users, test.movies)
    return (predicted.astype(np.float64) - test.ratings.astype(np.float64)) ** 2


def paired(a: np.ndarray, b: np.ndarray):
    """(RMSE a - RMSE b, its paired standard error) on the same rows' squared errors."""
    rmse_a, rmse_b = np.sqrt(a.mean()), np.sqrt(b.mean())
    return rmse_a - rmse_b, (a - b).std(ddof=1) / np.sqrt(len(a)) / (rmse_a + rmse_b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--run", required=True, metavar="PIPELINE_ROOT")
    args = parser.parse_args()
    config = configs.load(args.config).replace(pipeline_root=args.run)
    summaries = [run_summary.summarize(config, run_id)
                 for run_id in run_summary.run_ids(metadata.connect(config), config.pipeline_name)]
    summaries = [s for s in summaries if s is not None and s.judged_model is not None]
    if not summaries:
        raise SystemExit(f"{args.run}: no run with a trained model")
    latest = summaries[-1]
    same = [s for s in summaries if s.rows == latest.rows]
    for s in summaries:
        if s.rows != latest.rows:
            print(f"run {s.run_id} left out: its data {s.rows} differ from the latest run's {latest.rows}")
    test = rows.read_split(latest.examples, rows.EVAL)
    errors = {s.run_id: squared_errors(path_utils.serving_model_path(s.judged_model.uri), test) for s in same}
    print(f"{len(test):,} eval ratings of run {latest.run_id}")
    print(tabulate([[run_id, np.sqrt(e.mean()), e.std(ddof=1) / np.sqrt(len(e)) / (2 * np.sqrt(e.mean()))]
                    for run_id, e in errors.items()], headers=["run (judged model)", "RMSE", "its standard error"],
                   floatfmt=".5f"))
    print(tabulate([[a, b, *paired(errors[a], errors[b])] for a, b in itertools.combinations(errors, 2)],
                   headers=["run", "run", "RMSE difference", "paired standard error"], floatfmt=".5f"))


if __name__ == "__main__":
    main()
