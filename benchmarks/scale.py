"""Scale: the full pipeline on synthetic ratings at 100k, 1M and 10M, on this machine.

    python -m benchmarks.scale [--sizes 100k,1m,10m] [--work runs/benchmark-scale]
                               [--config configs/synthetic-scale.yaml] [--max-minutes M] [--beam-arg=...]

For each size: `movierec data synth` (MovieLens-shaped users x movies, cached between runs), then
`movierec run` from an empty pipeline root. Prints per-component wall time (from ML Metadata),
the whole run's wall time, peak RSS of the run's process tree (sampled every 0.2 s), rows/s,
the Trainer's examples/s against plain Keras fitting the same model on the same training rows
held in memory, the size of the pushed servable's seen tables (every accepted rating, models/seen.py)
and the 10M/1M time ratio. Targets (2 cores, 24 GB): 10M end to end <= 30 min,
peak RSS <= 6 GB, 10M/1M <= 11. Then quality on the run's own rows (benchmarks.ranking's
quality_on_run): the pushed `recommend`'s NDCG@10 and Recall@10 beside most-popular, implicit ALS
and the planted ceiling of the synthetic world, and the run's RMSE beside the noise floor.

    python -m benchmarks.scale --example-gen-only [--sizes 1m] [--repeat 3]

times the ExampleGen executor alone (its `Do`, with the config's Beam args, hash split and side
tables) on the same synthetic data: the number to compare before and after an ingestion change,
in about a tenth of a full run.

    python -m benchmarks.scale --seen-tables-only [--sizes 1m,10m]

builds only the pushed servable's seen tables (models/seen.py) for as many distinct user-movie
pairs as each size has ratings, over its users and movies with the synthetic data's IDs, and
prints their size by the stored layout and the memory the process gains holding them as the
servable does (the three variables and the user-ID hash table, models/export.py): seconds, not
a whole run.

    python -m benchmarks.scale --head-svd-only [--ratings data/movielens-100k/ratings.csv]
                               [--config configs/movielens-100k.yaml] [--repeat 3]

times the history head's SVD (models/retrieval/history_head.py, _top_singular) on a ratings
file's who-rated-what matrix at the config's retrieval settings, ARPACK and the dense route
alternating, CPU seconds each (BLAS threads included), and how far apart their triplets are:
what `make run` at 100k saves in the Trainer and in ServableExport, which each fit the head once.
"""
import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from typing import Dict, List

import psutil
from tabulate import tabulate

from benchmarks import ranking as ranking_benchmark, rating_settings
from components.servable_export.executor import SEEN_BYTES
from ratings import synth
from pipeline import configs, run_summary

# (ratings, users, movies): MovieLens-100K, -1M and -10M shapes.
SIZES = {"100k": (100_000, 943, 1_682), "1m": (1_000_000, 6_040, 3_706), "10m": (10_000_000, 69_878, 10_677)}
MAIN_COMPONENTS = ("RatingsExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "ServableExport",
                   "Pusher")


def movierec(*args) -> List[str]:
    return [sys.executable, "-m", "movierec.cli", *map(str, args)]


class PeakRss:
    """Peak resident memory of a process and all its descendants, summed, sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.peak, self._root, self._every = 0, psutil.Process(pid), every_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._done.is_set():
            try:
                tree = [self._root, *self._root.children(recursive=True)]
                total = 0
                for process in tree:
                    try:
                        total += process.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                self.peak = max(self.peak, total)
            except psutil.NoSuchProcess:
                return
            self._done.wait(self._every)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def synthesize(size: str, work: pathlib.Path) -> pathlib.Path:
    ratings, users, movies = SIZES[size]
    data = work / f"synth-{size}"
    if not (data / synth.SPEC_FILE).exists():  # data of the generator before its planted world: made again
        subprocess.run(movierec("data", "synth", "--ratings", ratings, "--users", users, "--movies", movies,
                                "--seed", 0, "--dest", data), check=True)
    return data


def keras_in_memory(config: configs.PipelineConfig, epochs: int = 2) -> float:
    """Examples/s of plain Keras fitting the pipeline's model on its training rows held in memory."""
    from models import trainer
    from models.artifacts import EXAMPLES_PER_SECOND
    from models.rating import model as model_lib

    rows = rating_settings.training_catalog(config)
    hparams = dataclasses.replace(config.hyperparameters, epochs=epochs)
    model = trainer.rating_model(rows, hparams, float(rows.seen_ratings.mean()),
                                 (float(rows.seen_ratings.min()), float(rows.seen_ratings.max())),
                                 model_lib.training_steps(len(rows.seen_ratings), hparams))
    history = model.fit(rows.training_inputs(), rows.seen_ratings, batch_size=hparams.batch_size,
                        epochs=hparams.epochs, shuffle=True, verbose=0,
                        callbacks=[trainer.Throughput(len(rows.seen_ratings))])
    return max(history.history[EXAMPLES_PER_SECOND])


def example_gen_seconds(size: str, args) -> Dict:
    """Wall and CPU seconds (this process and its Beam workers) of the ExampleGen executor's Do on
    the synthetic data of `size`, `--repeat` times: on a shared machine the CPU seconds move less."""
    import resource
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts, standard_component_specs as specs
    from tfx.utils import proto_utils
    from components.example_gen import executor as example_gen
    from pipeline import pipeline as pipeline_lib

    data = synthesize(size, args.work)
    config = configs.load(args.config).replace(data=str(data)).absolute()
    input_base, patterns = config.input_location()
    split_config = example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=config.train_buckets),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=config.eval_buckets)])
    properties = {
        specs.INPUT_BASE_KEY: input_base,
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in patterns.items()])),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output(split_config=split_config)),
        specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(example_gen.ingest_config(
            *config.side_tables(), pipeline_lib._rating_range(config), "benchmark")),
        specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    executor_class = example_gen.Executor
    times, cpu = [], []
    cpu_seconds = lambda: sum(getattr(resource.getrusage(who), field) for who in
                              (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))
    for attempt in range(args.repeat):
        output = args.work / f"example-gen-{size}"
        shutil.rmtree(output, ignore_errors=True)
        examples = standard_artifacts.Examples()
        examples.uri = str(output)
        executor = executor_class(executor_class.Context(beam_pipeline_args=list(config.beam_pipeline_args)))
        started, started_cpu = time.perf_counter(), cpu_seconds()
        executor.Do({}, {specs.EXAMPLES_KEY: [examples]}, dict(properties))
        times.append(time.perf_counter() - started)
        cpu.append(cpu_seconds() - started_cpu)
    result = {"size": size, "ratings": SIZES[size][0], "example_gen_seconds": times, "cpu_seconds": cpu,
              "best": min(times), "best_cpu": min(cpu)}
    print(json.dumps(result), flush=True)
    return result


def run_size(size: str, args) -> Dict:
    data = synthesize(size, args.work)
    root = args.work / f"run-{size}"
    shutil.rmtree(root, ignore_errors=True)
    config = configs.load(args.config).replace(
        data=str(data), pipeline_root=str(root / "pipeline"), serving_dir=str(root / "serving")).absolute()
    command = movierec("run", "--data", data, "--config", args.config, "--pipeline-root", config.pipeline_root,
                       "--serving-dir", config.serving_dir, *[f"--beam-arg={a}" for a in args.beam_arg])
    started = time.perf_counter()
    with open(root.parent / f"run-{size}.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        memory = PeakRss(process.pid)
        try:
            code = process.wait(timeout=args.max_minutes * 60 or None)
        except subprocess.TimeoutExpired:  # report the components that finished
            process.kill()
            code = process.wait()
    seconds, peak = time.perf_counter() - started, memory.stop()
    summary = run_summary.summarize(config)
    trainer_rate = max((summary.history or {}).get("examples_per_second", [0]))
    result = {"size": size, "ratings": SIZES[size][0], "exit_code": code, "seconds": seconds,
              "peak_rss_gb": peak / 1e9, "rows_per_s": SIZES[size][0] / seconds,
              "components": {name: summary.seconds.get(name, 0.0) for name in MAIN_COMPONENTS},
              "every_component": dict(summary.seconds),
              "eval_rmse": summary.metrics.get("root_mean_squared_error"),
              "trainer_examples_per_s": trainer_rate,
              # The pushed servable's seen tables (models/seen.py): every accepted rating.
              "seen_mb": summary.servable.get_int_custom_property(SEEN_BYTES) / 1e6 if summary.servable else None,
              "keras_in_memory_examples_per_s": keras_in_memory(config) if code == 0 else None}
    if code == 0:
        table, result["quality_rows_on"] = ranking_benchmark.quality_on_run(config)
        result["quality"] = [{"model": line[1], "ndcg": line[2], "recall": line[3], "rmse": line[10],
                              "of_ceiling": line[-1]} for line in table]
    print(json.dumps(result), flush=True)
    return result


def seen_tables(size: str) -> None:
    """The seen tables alone at a size (see the module's docstring): layout bytes, RSS gained."""
    import numpy as np
    import tensorflow as tf

    from models import export, seen as seen_lib

    ratings, users, movies = SIZES[size]
    rng = np.random.default_rng(0)
    cells = np.unique(rng.integers(0, users * movies, int(ratings * 1.05)))
    cells = rng.permutation(cells)[:ratings]  # distinct pairs, as synth writes them
    user_ids = np.array([str(i + 1).encode() for i in range(users)], dtype=object)
    seen = seen_lib.from_pairs(cells // movies, user_ids, (cells % movies).astype(np.int32))
    del cells
    process = psutil.Process()
    before = process.memory_info().rss
    held = (export.index_table(seen.user_ids), tf.Variable(seen.user_ids.astype(bytes)),
            tf.Variable(seen.movies), tf.Variable(seen.row_splits))
    gained = process.memory_info().rss - before
    print(f"{size}: {seen.num_pairs:,} pairs of {seen.num_users:,} users; layout {seen.nbytes / 1e6:.1f} MB "
          f"(movies {seen.movies.nbytes / 1e6:.1f}, row splits {seen.row_splits.nbytes / 1e6:.2f}); "
          f"held as the servable holds them: +{gained / 1e6:.1f} MB RSS", flush=True)
    del held


def head_svd_seconds(ratings_csv: pathlib.Path, config_path: pathlib.Path, repeat: int) -> None:
    """The head's SVD on `ratings_csv` by both routes of _top_singular (module docstring)."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from models.metrics import ranking
    from models.retrieval import history_head

    hparams = configs.load(config_path).hyperparameters
    frame = pd.read_csv(ratings_csv)
    users, movies = pd.factorize(frame.iloc[:, 0])[0], pd.factorize(frame.iloc[:, 1])[0]
    x = ranking.interactions(users, movies, users.max() + 1, movies.max() + 1).astype(np.float64)
    penalty = hparams.retrieval_l2 + hparams.retrieval_popularity_l2 * np.asarray(x.sum(axis=0)).ravel()
    matrix, rank = x @ sp.diags(penalty ** -0.5), min(hparams.retrieval_dim, x.shape[1])
    routes = {"ARPACK (svds)": 0, "dense (LAPACK)": history_head.DENSE_SVD_ENTRIES}
    results = {}
    for round_ in range(repeat):
        for name, limit in routes.items():
            history_head.DENSE_SVD_ENTRIES = limit
            started = time.process_time()
            results[name] = history_head._top_singular(matrix, rank)
            print(f"round {round_ + 1}: {name}: {time.process_time() - started:.2f} CPU-s "
                  f"({x.shape[0]} x {x.shape[1]}, rank {rank})", flush=True)
    (s1, w1), (s2, w2) = results.values()
    projector = lambda s, w: (w * (s ** 2 / (s ** 2 + 1))) @ w.T
    print(f"largest difference: singular values {np.abs(s1 - s2).max() / s1[0]:.1e} (relative), "
          f"W D W' {np.abs(projector(s1, w1) - projector(s2, w2)).max():.1e}")


def profile(result: Dict) -> str:
    """Every component's seconds of one run (ML Metadata's execution times, in run order) and its
    ratio to the Trainer's, then the time outside any component (process start-up, imports, DAG
    compilation, metadata), and the whole run over the Trainer: where a run's cost beside its
    training is (issue 24: at most 2x at 1M and 10M, 1.6x at 100k)."""
    seconds = result["every_component"]
    trainer = seconds.get("Trainer") or float("nan")
    outside = result["seconds"] - sum(seconds.values())
    rows = [[name, f"{s:.1f}", f"{s / trainer:.2f}"] for name, s in seconds.items()]
    rows += [["(outside any component)", f"{outside:.1f}", f"{outside / trainer:.2f}"],
             ["whole run", f"{result['seconds']:.1f}", f"{result['seconds'] / trainer:.2f}"]]
    return f"{result['size']} (peak RSS {result['peak_rss_gb']:.2f} GB):\n" + tabulate(
        rows, headers=["component", "seconds", "x Trainer"], colalign=("left", "right", "right"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1m,10m")
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path("runs/benchmark-scale"))
    parser.add_argument("--config", type=pathlib.Path,
                        help="default configs/synthetic-scale.yaml (with --head-svd-only configs/movielens-100k.yaml)")
    parser.add_argument("--max-minutes", type=float, default=0,
                        help="stop a run after this long and report the components it finished (0: no limit)")
    parser.add_argument("--beam-arg", action="append", default=[], help="passed to `movierec run --beam-arg`")
    parser.add_argument("--example-gen-only", action="store_true", help="time the ExampleGen executor alone")
    parser.add_argument("--repeat", type=int, default=3, help="with --example-gen-only: runs per size")
    parser.add_argument("--seen-tables-only", action="store_true", help="only the servable's seen tables' memory")
    parser.add_argument("--head-svd-only", action="store_true", help="only the history head's SVD, both routes")
    parser.add_argument("--ratings", type=pathlib.Path, default=pathlib.Path("data/movielens-100k/ratings.csv"),
                        help="with --head-svd-only: the ratings file")
    args = parser.parse_args()
    args.config = args.config or pathlib.Path(
        "configs/movielens-100k.yaml" if args.head_svd_only else "configs/synthetic-scale.yaml")
    if args.head_svd_only:
        head_svd_seconds(args.ratings, args.config, args.repeat)
        return
    if args.seen_tables_only:
        for size in args.sizes.split(","):
            seen_tables(size)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.example_gen_only:
        for size in args.sizes.split(","):
            example_gen_seconds(size, args)
        return
    results = [run_size(size, args) for size in args.sizes.split(",")]
    (args.work / "results.json").write_text(json.dumps(results, indent=1))

    headers = ["size", "exit", "total s", "peak RSS GB", "rows/s", *[c.replace("FileBased", "") for c in MAIN_COMPONENTS],
               "eval RMSE", "trainer ex/s", "Keras in-memory ex/s", "seen tables MB"]
    print(tabulate([[r["size"], r["exit_code"], f"{r['seconds']:.0f}", f"{r['peak_rss_gb']:.2f}",
                     f"{r['rows_per_s']:,.0f}", *[f"{r['components'][c]:.0f}" if r["components"][c] else "-" for c in MAIN_COMPONENTS],
                     f"{r['eval_rmse']:.4f}" if r["eval_rmse"] else "-", f"{r['trainer_examples_per_s']:,.0f}",
                     f"{r['keras_in_memory_examples_per_s']:,.0f}" if r["keras_in_memory_examples_per_s"] else "-",
                     f"{r['seen_mb']:.1f}" if r["seen_mb"] is not None else "-"]
                    for r in results], headers=headers))
    print(tabulate([[r["size"], q["model"], q["ndcg"], q["recall"], q["of_ceiling"], q["rmse"]]
                    for r in results for q in r.get("quality", [])],
                   headers=["size", "model (same rows)", "NDCG@10", "Recall@10", "of ceiling", "RMSE"],
                   floatfmt=".4f", missingval="-"))
    for r in results:
        print(profile(r))
    by_size = {r["size"]: r for r in results}
    if "1m" in by_size and "10m" in by_size:
        small, large = by_size["1m"], by_size["10m"]
        if small["exit_code"] == large["exit_code"] == 0:
            print(f"10M / 1M wall time: {large['seconds'] / small['seconds']:.1f} (target <= 11)")
        print("10M / 1M per component: " + ", ".join(
            f"{name} {large['components'][name] / small['components'][name]:.1f}" for name in MAIN_COMPONENTS
            if large["components"][name] and small["components"][name]))


if __name__ == "__main__":
    main()
