"""Ranking: our pipeline's `recommend` lists against popularity, EASE and implicit ALS, same rows.

    python -m benchmarks.ranking [--splits random temporal] [--choose-head]
    python -m benchmarks.ranking --config CONFIG.yaml --run PIPELINE_ROOT   (peers on a run's rows)

The splits are benchmarks/accuracy.py's (random: numpy default_rng(0) 80/20; temporal: oldest 80%
by timestamp for training, newest 20% for testing), written as train/ and eval/ folders and run
through `movierec run`: the pipeline's RankingEvaluator scores the pushed model's recommend lists
(top 10 over the whole catalogue, training movies excluded, relevant = the user's test movies; and
only those rated 4-5) and TFMA gives its RMSE. The peers are fitted on the same training rows and
scored by the same code (models/metrics/ranking.py, EvalSet): most-popular; EASE (Steck 2019) and implicit
ALS with settings chosen on validation carved from training only (a random 10% of the training
pairs on the random split, the newest 10% on the temporal split), then refitted on all of it.
EASE and ALS rank new users (no training ratings) by popularity. Then what a user sees (issue
21): the same training rows handed over as ONE ratings file (the pipeline makes its own eval split
inside them), the pushed model's `recommend` asked for each test user's top 10 with exclude_seen on
and no exclusions of the client's; beside it, from that run, the judged model as it was pushed
before ServableExport, and its head with history widened but not refitted (`user_rows`). Prints
one table, and the share of each of those lists' movies the user had already rated.

--choose-head instead searches the settings of our history head (models/retrieval/history_head.py: rank, L2,
popularity L2) the same way, on validation carved from training only, and prints the search: on
the random split the mean validation NDCG@10 over three random carves (seeds 0, 1, 2), as one
carve's differences between the top settings are noise-sized; on the temporal split the one
newest-10% carve. Then the popularity weight (`retrieval_popularity_weight`) with the best of
those, then the recency weight and window (`retrieval_recency_weight`, `retrieval_recency_days`:
recent popularity, counted on each fitting part's own newest days), then the popularity discount
(`retrieval_popularity_discount`). The configs' `retrieval_*`
settings come from this search.

--run PIPELINE_ROOT scores the peers on the rows of the latest run of the --config pipeline
there (its ExampleGen's train and eval splits, found through its ML Metadata) beside the run's
own RankingEvaluator figures; `make bench-catalog` and benchmarks/scale.py use it. There the
peers are most-popular and implicit ALS, ALS's settings chosen over RUN_ALS_GRID on a random carve of
the run's training rows the size of its eval split (its "fit s" is the search and the refit);
dense EASE cannot run there (a 116k x 116k matrix), which is why our head exists. On `movierec
data synth` data (synth.json beside the side tables the run joined) it adds the planted ceiling,
lists ranked by the world's own choice probabilities (`World.expected_picks`), with the noise
floor as its RMSE (E[stars | preference] on the run's eval rows), and each model's NDCG@10 as a
share of the ceiling's. --run --choose-head searches the head's rank and L2 (RUN_HEAD_GRID), then
its popularity weight, then its popularity discount, on that same carve.
"""
import itertools
import pathlib
from typing import Dict, List, Optional, Tuple
import shutil
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf
from tabulate import tabulate
from tfx.utils import path_utils

from benchmarks import accuracy
from components import rows
from components.ranking_evaluator import executor as ranking_executor
from models.metrics import ranking
from benchmarks import ranking_peers
from models.retrieval import history_head
from ratings import features, synth
from pipeline import configs, run_summary
from components.evaluation import RMSE

EASE_GRID = [{"l2": l2} for l2 in (100.0, 200.0, 500.0, 800.0, 1200.0)]
# A first, wider search (factors 32/64/128, regularization 0.01/0.1, alpha 1/5/20) preferred few
# factors and alpha 1 on both splits; this grid brackets that.
ALS_GRID = [{"factors": f, "regularization": 0.1, "alpha": a} for f, a in itertools.product((16, 32, 64), (1.0, 5.0))]
VALIDATION_FRACTION = 0.1
HEAD_GRID = [{"dim": d, "l2": l2, "popularity_l2": w}
             for d, l2, w in itertools.product((64, 128, 256, 512), (300.0, 500.0, 800.0), (0.0, 0.5, 1.0))]
HEAD_SEEDS = (0, 1, 2)
# On a catalogue-scale run (--run --choose-head): each setting is one truncated SVD of the run's
# ratings and lists over the whole catalogue, minutes at 116k movies; L2 spans the larger counts.
RUN_HEAD_GRID = [{"dim": d, "l2": l2, "popularity_l2": 0.5} for d, l2 in itertools.product((64, 128, 256), (10.0, 50.0, 200.0, 1000.0))]
# ALS's settings on a run's rows (als_on_run): on the catalogue run's carve ALS_GRID's best sat on
# its edge (16 factors, alpha 5: 0.1343; 64 factors and alpha 1 far below) and alpha 10 scored
# 0.1350 (benchmarks/README.md, catalogue scale), so a fair peer's grid brackets that corner.
RUN_ALS_GRID = [{"factors": f, "regularization": 0.1, "alpha": a} for f, a in itertools.product((8, 16, 32), (5.0, 10.0, 20.0))]
POPULARITY_WEIGHTS = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# The popularity discount's beta (history_head.fit): searched last, with the other settings chosen.
POPULARITY_DISCOUNTS = (0.0, 0.05, 0.1, 0.2, 0.3)
RECENCY = [{"recency_weight": w, "recency_days": d} for w, d in itertools.product((1.0, 3.0, 10.0), (7.0, 14.0, 30.0, 60.0))]


def eval_set(train_rows, test_rows, bounds) -> ranking.EvalSet:
    column = lambda rows, i: np.array([r[i] for r in rows])
    return ranking.EvalSet.from_rows(
        column(train_rows, 0), column(train_rows, 1), column(test_rows, 0), column(test_rows, 1),
        column(test_rows, 2).astype(np.float32), activity_bounds=bounds)


def training_timestamps(data: ranking.EvalSet, train_rows) -> sp.csr_matrix:
    """[U_all, I] each training pair's timestamp + 1 (so none is an implicit zero), laid out like
    the training matrix (the benchmark's files rate each pair once)."""
    users = np.searchsorted(data.all_user_ids, [r[0] for r in train_rows])
    movies = np.searchsorted(data.movie_ids, [r[1] for r in train_rows])
    return sp.csr_matrix((np.array([int(r[3]) for r in train_rows], dtype=np.float64) + 1.0,
                          (users, movies)), shape=data.train.shape)


def validation_carve(data: ranking.EvalSet, train_rows, kind: str, seed: int = 0):
    """(fitting part, validation part) of the training interactions, as the docstring says."""
    if kind == "random":
        return ranking_peers.carve_validation(data.train, VALIDATION_FRACTION, seed=seed)
    stamps = training_timestamps(data, train_rows)  # in CSR order, as the training matrix's pairs
    return ranking_peers.carve_validation(data.train, VALIDATION_FRACTION, order=stamps.tocoo().data)


def peers(data: ranking.EvalSet, train_rows, kind: str):
    """(name, settings, scorer, fit seconds) of each peer fitted on all training rows."""
    fit_part, validation = validation_carve(data, train_rows, kind)
    out = []
    start = time.perf_counter()
    out.append(("popularity", "", ranking.fit_popularity(data.train), time.perf_counter() - start))
    for name, fit, grid in (("EASE", ranking_peers.fit_ease, EASE_GRID),
                            ("implicit ALS", ranking_peers.fit_implicit_als, ALS_GRID)):
        best, tried = ranking_peers.choose(lambda x, **s: ranking_peers.with_popularity_for_cold_users(fit(x, **s), x),
                                     grid, fit_part, validation)
        print(f"{kind} {name}: validation NDCG@10 " + ", ".join(
            f"{settings} {score:.4f}" for settings, score in tried), flush=True)
        start = time.perf_counter()
        scorer = ranking_peers.with_popularity_for_cold_users(fit(data.train, **best), data.train)
        out.append((name, ", ".join(f"{k}={v:g}" for k, v in best.items()), scorer, time.perf_counter() - start))
    return out


def fit_head(train: sp.csr_matrix, dim: int, l2: float, popularity_l2: float,
             popularity_weight: float = 0.0, history: sp.csr_matrix = None, recency_weight: float = 0.0,
             recency_days: float = 30.0, stamps: sp.csr_matrix = None, popularity_discount: float = 0.0
             ) -> ranking.Scorer:
    """Our history head's scores as a numpy peer: the tables `recommend` multiplies, for choosing
    its settings without a pipeline run (users with no history: popularity, as the head does).
    `history`: whose rows are the users' histories (default: the rows fitted on, `train`);
    `stamps`: training_timestamps, needed with a recency weight (recent = within `recency_days`
    of the newest of `train`'s own ratings)."""
    history = train if history is None else history
    pairs = train.tocoo()
    recent = None
    if recency_weight:
        dated = stamps.multiply(train > 0).tocoo()
        recent = history_head.recent_popularity(dated.row, dated.col, dated.data - 1.0, train.shape[1], recency_days)
    tables = history_head.fit(pairs.row, pairs.col, train.shape[1], l2, dim, popularity_l2, popularity_weight,
                              recent, recency_weight, popularity_discount)
    extra = len(tables.weights)
    history_rows, candidates = tables.history[:, :-extra], tables.candidates[:, :-extra]
    popularity = tables.candidates[:, -extra:] @ tables.weights
    return ranking_peers.with_popularity_for_cold_users(
        lambda users: np.asarray(history[users] @ history_rows) @ candidates.T + popularity, history)


def search_head(grid, carves, label: str, stamps: sp.csr_matrix = None) -> Dict:
    """Prints the head's validation NDCG@10 per setting (mean over carves), best first; the best.
    `stamps`: training_timestamps, for settings with a recency weight."""
    scores = [[ranking_peers.score_peer(fit_head(fit_part, **settings, stamps=stamps), fit_part, validation
                                        )[ranking.OVERALL].ndcg
               for fit_part, validation in carves] for settings in grid]
    table = sorted(([label] + list(s.values()) + [np.mean(v)] + v for s, v in zip(grid, scores)),
                   key=lambda r: -r[len(grid[0]) + 1])
    print(tabulate(table, headers=["split"] + [f"retrieval_{key}" for key in grid[0]]
                   + ["mean validation NDCG@10"] + [f"carve {i}" for i in range(len(carves))], floatfmt=".4f"),
          flush=True)
    return dict(zip(grid[0], table[0][1:len(grid[0]) + 1]))


def choose_head(data: ranking.EvalSet, train_rows, kind: str) -> None:
    """The head's settings search (see the module docstring): rank, L2 and popularity L2 first,
    then the popularity weight with those, then the recency weight and window with all of them
    (a weight of 0 is the previous step's best), then the popularity discount with all of those."""
    carves = [validation_carve(data, train_rows, kind, seed) for seed in (HEAD_SEEDS if kind == "random" else (0,))]
    best = search_head(HEAD_GRID, carves, kind)
    best = search_head([{**best, "popularity_weight": w} for w in POPULARITY_WEIGHTS], carves, kind)
    stamps = training_timestamps(data, train_rows)
    best = search_head([{**best, "recency_weight": 0.0, "recency_days": 30.0}] + [{**best, **r} for r in RECENCY],
                       carves, kind, stamps)
    search_head([{**best, "popularity_discount": b} for b in POPULARITY_DISCOUNTS], carves, kind, stamps)


def run_rows(config: configs.PipelineConfig):
    """(summary, EvalSet) of the latest run of the configured pipeline: its own train/eval rows."""
    summary = run_summary.summarize(config)
    if summary is None or summary.examples is None or not summary.ranking_evaluation:
        raise SystemExit(f"{config.pipeline_root}: no run with examples and ranking metrics to compare with")
    return summary, rows.read_eval_set(summary.examples, config.evaluation.user_activity_bounds)


def run_carve(data: ranking.EvalSet):
    """(fitting part, validation part) of a run's training rows: one random carve the size of its
    eval split, for choosing the head's and ALS's settings there."""
    return ranking_peers.carve_validation(data.train, data.eval_ratings.nnz / (data.train.nnz + data.eval_ratings.nnz))


def choose_head_on_run(config: configs.PipelineConfig) -> None:
    """The head's settings searched on a run's training rows (run_carve): RUN_HEAD_GRID (a
    catalogue too large for HEAD_GRID's ranks), then the popularity weight, then the popularity
    discount."""
    summary, data = run_rows(config)
    carve = run_carve(data)
    best = search_head(RUN_HEAD_GRID, [carve], f"run {summary.run_id}")
    best = search_head([{**best, "popularity_weight": w} for w in POPULARITY_WEIGHTS], [carve], f"run {summary.run_id}")
    search_head([{**best, "popularity_discount": b} for b in POPULARITY_DISCOUNTS], [carve], f"run {summary.run_id}")


def als_on_run(data: ranking.EvalSet) -> Tuple[Dict, ranking.Scorer]:
    """(settings, scorer) of implicit ALS chosen over RUN_ALS_GRID on run_carve, as the head's are,
    then refitted on all the run's training rows: a peer tuned like ours, not MovieLens' choice."""
    fit = lambda train, **settings: ranking_peers.with_popularity_for_cold_users(
        ranking_peers.fit_implicit_als(train, **settings), train)
    fit_part, validation = run_carve(data)
    best, tried = ranking_peers.choose(fit, RUN_ALS_GRID, fit_part, validation)
    print("implicit ALS: validation NDCG@10 " + ", ".join(f"{settings} {score:.4f}" for settings, score in tried),
          flush=True)
    return best, fit(data.train, **best)


def planted_truth(summary: run_summary.RunSummary, data: ranking.EvalSet) -> Optional[Tuple[ranking.Scorer, float]]:
    """(the planted ceiling's scorer, the noise floor: RMSE of E[stars | preference] on the run's
    eval rows) when the run's data was written by `movierec data synth` (synth.json beside the
    side tables the run joined), else None."""
    movies_table = summary.side_tables.get("movies")
    world = synth.World.load(pathlib.Path(movies_table).parent) if movies_table else None
    if world is None:
        return None
    users, movies = synth.index_of(data.all_user_ids), synth.index_of(data.movie_ids)
    held_out = data.eval_ratings.tocoo()
    eval_users, eval_movies = users[held_out.row], movies[held_out.col]
    stamps = rating_timestamps(pathlib.Path(movies_table).parent, eval_users, eval_movies, world.spec.movies)
    expected = world.expected_stars(world.preference(eval_users, eval_movies, stamps))
    floor = float(np.sqrt(np.mean((held_out.data - expected) ** 2)))
    return (lambda rows: world.expected_picks(users[rows], movies)), floor


def rating_timestamps(folder: pathlib.Path, users: np.ndarray, movies: np.ndarray, num_movies: int) -> np.ndarray:
    """Timestamps of the given (user, movie) index pairs, read from the ratings files under folder."""
    wanted = users * num_movies + movies
    order = np.argsort(wanted)
    stamps = np.full(len(wanted), -1, np.int64)
    for path in sorted(folder.glob("**/ratings*.csv")):
        for chunk in pd.read_csv(path, usecols=[features.USER_ID, features.MOVIE_ID, features.TIMESTAMP],
                                 dtype=np.int64, chunksize=2_000_000):
            keys = (chunk[features.USER_ID].values - 1) * num_movies + chunk[features.MOVIE_ID].values - 1
            at = np.minimum(np.searchsorted(wanted, keys, sorter=order), len(wanted) - 1)
            found = wanted[order[at]] == keys
            stamps[order[at[found]]] = chunk[features.TIMESTAMP].values[found]
    if (stamps < 0).any():
        raise SystemExit(f"{folder}: {int((stamps < 0).sum())} eval ratings not found in its ratings files")
    return stamps


def quality_on_run(config: configs.PipelineConfig) -> Tuple[List, str]:
    """(table rows, a line on the data) of a run's own ranking figures beside most-popular,
    implicit ALS and, on `data synth` data, the planted ceiling (its RMSE column the noise floor),
    all on the run's rows; the last column is each NDCG@10's share of the ceiling's."""
    summary, data = run_rows(config)
    table = [run_row("run", f"movierec (run {summary.run_id})", summary)]
    start = time.perf_counter()
    table.append(peer_row("run", "most popular", data, ranking.fit_popularity(data.train), time.perf_counter() - start))
    start = time.perf_counter()
    chosen, scorer = als_on_run(data)
    settings = ", ".join(f"{k}={v:g}" for k, v in chosen.items())
    table.append(peer_row("run", f"implicit ALS ({settings})", data, scorer, time.perf_counter() - start))
    truth = planted_truth(summary, data)
    if truth:
        ceiling, floor = truth
        table.append(peer_row("run", "planted ceiling (RMSE: noise floor)", data, ceiling, None, rmse=floor))
    for line in table:
        line.append(line[2] / table[-1][2] if truth else None)
    about = (f"{data.train.nnz:,} training / {data.eval_ratings.nnz:,} eval ratings, {len(data.user_ids):,} eval users, "
             f"{len(data.movie_ids):,} movies")
    return table, about


def peers_on_run(config: configs.PipelineConfig) -> None:
    """Prints the run's own ranking figures and the peers' on the same rows (module docstring)."""
    table, about = quality_on_run(config)
    print(about)
    print_table(table, ["of ceiling"])


HEADERS = ["split", "model", "NDCG@10", "Recall@10", "P@10", "MAP@10", "coverage", "pop. rank", "NDCG@10 4-5*",
           "Recall@10 4-5*", "RMSE", "fit s"]


def print_table(table, extra_headers=()) -> None:
    print(tabulate(table, headers=HEADERS + list(extra_headers), floatfmt=".4f", missingval="-"), flush=True)


def row(kind, model, metrics_all, metrics_liked, rmse, seconds):
    return ([kind, model] + [metrics_all[c] for c in ranking.METRICS]
            + [metrics_liked["ndcg"], metrics_liked["recall"], rmse, seconds])


def run_row(kind, model, summary: run_summary.RunSummary):
    """A pipeline run's row: its RankingEvaluator's figures for the pushed model, TFMA's RMSE."""
    return row(kind, model, summary.ranking_overall(), summary.ranking_overall(relevance=ranking.RELEVANT_LIKED),
               summary.metrics[RMSE], summary.seconds["Trainer"])


def peer_row(kind, model, data: ranking.EvalSet, scorer: ranking.Scorer, seconds, lists=None, rmse=None):
    """A fitted peer's row (or given lists'): scored by the same code, both relevances."""
    lists = data.peer_lists(scorer) if lists is None else lists
    scored = {which: data.score(lists, which)[ranking.OVERALL].as_dict()
              for which in (ranking.RELEVANT_ALL, ranking.RELEVANT_LIKED)}
    return row(kind, model, scored[ranking.RELEVANT_ALL], scored[ranking.RELEVANT_LIKED], rmse, seconds)


def already_rated(data: ranking.EvalSet, lists: Dict) -> float:
    """Share of the listed movies that the user rated in the training rows."""
    row_of = dict(zip(data.all_user_ids.tolist(), range(len(data.all_user_ids))))
    index = dict(zip(data.movie_ids.tolist(), range(len(data.movie_ids))))
    listed = rated = 0
    for user, movies in lists.items():
        own = set(data.train.indices[data.train.indptr[row_of[user]]:data.train.indptr[row_of[user] + 1]].tolist())
        listed += len(movies)
        rated += sum(index.get(m, -1) in own for m in movies)
    return rated / max(listed, 1)


def user_rows(kind: str, work, source, header, train_rows, config: configs.PipelineConfig, data: ranking.EvalSet):
    """What a user sees (issue 21): the pipeline given the training rows as ONE ratings file (it
    makes its own eval split inside them), the model it pushed asked for each test user's top 10
    with exclude_seen on and no exclusions of the client's. Beside it, from the same run: the model
    the gates judged (what was pushed before ServableExport: it knows its train split only), and
    in numpy that model's head with history and exclusions widened to every training row but not
    refitted (the other way to build the servable). Prints the share of listed movies the user had
    already rated."""
    shutil.rmtree(work, ignore_errors=True)
    accuracy.write_data(work / "data", source, header, {"": train_rows})
    summary = accuracy.run_pipeline(work, work / "data", config)
    seconds = summary.seconds["Trainer"] + summary.seconds["ServableExport"]
    table = []
    for name, model_dir in (("pushed: judged weights, head refitted on every rating", summary.pushed_destination),
                            ("judged model as pushed before", path_utils.serving_model_path(summary.judged_model.uri))):
        lists = {user: [m.decode() for m in movies]  # the CSV's IDs are str, the model's bytes
                 for user, movies in ranking_executor.recommend_lists(tf.saved_model.load(model_dir), data.user_ids,
                                                                  ranking.K).items()}
        table.append(peer_row(kind, f"movierec one file, {name}", data, None, seconds, lists))
        print(f"{kind} {name}: {already_rated(data, lists):.1%} of listed movies already rated", flush=True)
    train = rows.read_split(summary.examples, rows.TRAIN)
    users, movies = train.users.astype(str), train.movies.astype(str)
    judged_rows = ranking.interactions(np.searchsorted(data.all_user_ids, users), np.searchsorted(data.movie_ids, movies),
                                       *data.train.shape)
    h = config.hyperparameters
    widened = fit_head(judged_rows, h.retrieval_dim, h.retrieval_l2, h.retrieval_popularity_l2,
                       h.retrieval_popularity_weight, history=data.train, recency_weight=h.retrieval_recency_weight,
                       recency_days=h.retrieval_recency_days, stamps=training_timestamps(data, train_rows),
                       popularity_discount=h.retrieval_popularity_discount)
    table.append(peer_row(kind, "numpy: judged head, history widened, not refitted", data, widened, None))
    return table


def main() -> None:
    parser = accuracy.split_arguments(__doc__.splitlines()[0], "runs/benchmark-ranking")
    parser.add_argument("--peers-only", action="store_true", help="skip the pipeline (checks the peers)")
    parser.add_argument("--choose-head", action="store_true",
                        help="only search the history head's settings on validation carved from training")
    parser.add_argument("--run", metavar="PIPELINE_ROOT",
                        help="only score the peers on the latest run of the --config pipeline in this root")
    args = parser.parse_args()
    if args.run:
        config = configs.load(args.config).replace(pipeline_root=args.run)
        (choose_head_on_run if args.choose_head else peers_on_run)(config)
        return
    settings = {"random": args.config, "temporal": args.temporal_config}
    header, rows = accuracy.read_ratings(args.data / features.RATINGS_FILE)

    table = []
    for kind in args.splits:
        train, test = accuracy.split_rows(rows, kind)
        config = configs.load(settings[kind])
        data = eval_set(train, test, config.evaluation.user_activity_bounds)
        if args.choose_head:
            choose_head(data, train, kind)
            continue
        if not args.peers_only:
            work = args.work / kind
            shutil.rmtree(work, ignore_errors=True)
            accuracy.write_split(work / "data", args.data, header, train, test)
            summary = accuracy.run_pipeline(work, work / "data", config)
            table.append(run_row(kind, f"movierec ({settings[kind].name}), train/ and eval/ given: judged model",
                                 summary))
            table += user_rows(kind, args.work / f"{kind}-one-file", args.data, header, train, config, data)
        for name, chosen, scorer, seconds in peers(data, train, kind):
            table.append(peer_row(kind, f"{name} ({chosen})" if chosen else name, data, scorer, seconds))
        print(f"{kind}: {len(train):,} training / {len(test):,} test ratings, {len(data.user_ids):,} test users, "
              f"{len(data.movie_ids):,} movies", flush=True)
    print_table(table)


if __name__ == "__main__":
    main()
