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
EASE and ALS rank new users (no training ratings) by popularity. Prints one table.

--choose-head instead searches the settings of our history head (models/retrieval/history_head.py: rank, L2,
popularity L2) the same way, on validation carved from training only, and prints the search: on
the random split the mean validation NDCG@10 over three random carves (seeds 0, 1, 2), as one
carve's differences between the top settings are noise-sized; on the temporal split the one
newest-10% carve. Then the popularity weight (`retrieval_popularity_weight`) with the best of
those. The configs' `retrieval_*` settings come from this search. With --run (below) it searches
the popularity weight only, on a random carve of that run's training rows.

--run PIPELINE_ROOT scores the peers on the rows of the latest run of the --config pipeline
there (its ExampleGen's train and eval splits, found through its ML Metadata) beside the run's
own RankingEvaluator figures; `make bench-catalog` uses it on the 116k-movie catalogue. There the
peers are most-popular and ALS with the MovieLens-100K choice (16 factors, regularization 0.1,
alpha 1; no search: one fit takes minutes at that size); dense EASE cannot run there (a
116k x 116k matrix), which is why our head exists.
"""
import itertools
from typing import Dict
import shutil
import time

import numpy as np
import scipy.sparse as sp
from tabulate import tabulate

from benchmarks import accuracy, ranking_peers
from components import rows
from models.metrics import ranking
from models.retrieval import history_head
from ratings import features
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
POPULARITY_WEIGHTS = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def eval_set(train_rows, test_rows, bounds) -> ranking.EvalSet:
    column = lambda rows, i: np.array([r[i] for r in rows])
    return ranking.EvalSet.from_rows(
        column(train_rows, 0), column(train_rows, 1), column(test_rows, 0), column(test_rows, 1),
        column(test_rows, 2).astype(np.float32), activity_bounds=bounds)


def validation_carve(data: ranking.EvalSet, train_rows, kind: str, seed: int = 0):
    """(fitting part, validation part) of the training interactions, as the docstring says."""
    if kind == "random":
        return ranking_peers.carve_validation(data.train, VALIDATION_FRACTION, seed=seed)
    users = np.searchsorted(data.all_user_ids, [r[0] for r in train_rows])
    movies = np.searchsorted(data.movie_ids, [r[1] for r in train_rows])
    # Timestamps laid out like the training matrix's stored pairs (CSR order).
    stamps = sp.csr_matrix((np.array([int(r[3]) for r in train_rows], dtype=np.float64) + 1.0,
                            (users, movies)), shape=data.train.shape)
    return ranking_peers.carve_validation(data.train, VALIDATION_FRACTION, order=stamps.tocoo().data)


def fitted_peers(data: ranking.EvalSet, train_rows, kind: str):
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
             popularity_weight: float = 0.0) -> ranking.Scorer:
    """Our history head's scores as a numpy peer: the tables `recommend` multiplies, for choosing
    its settings without a pipeline run (users with no history: popularity, as the head does)."""
    pairs = train.tocoo()
    tables = history_head.fit(pairs.row, pairs.col, train.shape[1], l2, dim, popularity_l2, popularity_weight)
    history, candidates = tables.history[:, :-1], tables.candidates[:, :-1]
    popularity = tables.popularity_weight * tables.candidates[:, -1]
    return ranking_peers.with_popularity_for_cold_users(
        lambda users: np.asarray(train[users] @ history) @ candidates.T + popularity, train)


def search_head(grid, carves, label: str) -> Dict:
    """Prints the head's validation NDCG@10 per setting (mean over carves), best first; the best."""
    scores = [[ranking_peers.score_peer(fit_head(fit_part, **settings), fit_part, validation)[ranking.OVERALL].ndcg
               for fit_part, validation in carves] for settings in grid]
    table = sorted(([label] + list(s.values()) + [np.mean(v)] + v for s, v in zip(grid, scores)),
                   key=lambda r: -r[len(grid[0]) + 1])
    print(tabulate(table, headers=["split"] + [f"retrieval_{key}" for key in grid[0]]
                   + ["mean validation NDCG@10"] + [f"carve {i}" for i in range(len(carves))], floatfmt=".4f"),
          flush=True)
    return dict(zip(grid[0], table[0][1:len(grid[0]) + 1]))


def choose_head(data: ranking.EvalSet, train_rows, kind: str) -> None:
    """The head's settings search (see the module docstring): rank, L2 and popularity L2 first,
    then the popularity weight with those."""
    carves = [validation_carve(data, train_rows, kind, seed) for seed in (HEAD_SEEDS if kind == "random" else (0,))]
    best = search_head(HEAD_GRID, carves, kind)
    search_head([{**best, "popularity_weight": w} for w in POPULARITY_WEIGHTS], carves, kind)


def run_rows(config: configs.PipelineConfig):
    """(summary, EvalSet) of the latest run of the configured pipeline: its own train/eval rows."""
    summary = run_summary.summarize(config)
    if summary is None or summary.examples is None or not summary.ranking_evaluation:
        raise SystemExit(f"{config.pipeline_root}: no run with examples and ranking metrics to compare with")
    return summary, rows.read_eval_set(summary.examples, config.evaluation.user_activity_bounds)


def choose_head_on_run(config: configs.PipelineConfig) -> None:
    """The popularity weight searched on a run's training rows (a random carve the size of its
    eval split), the configured rank and penalties kept: a catalogue too large for the full grid."""
    summary, data = run_rows(config)
    carve = ranking_peers.carve_validation(data.train, data.eval_ratings.nnz / (data.train.nnz + data.eval_ratings.nnz))
    h = config.hyperparameters
    search_head([{"dim": h.retrieval_dim, "l2": h.retrieval_l2, "popularity_l2": h.retrieval_popularity_l2,
                  "popularity_weight": w} for w in POPULARITY_WEIGHTS], [carve], f"run {summary.run_id}")


def peers_on_run(config: configs.PipelineConfig) -> None:
    """Prints the run's own ranking figures and the peers' on the same rows (module docstring)."""
    summary, data = run_rows(config)
    table = [run_row("run", f"movierec (run {summary.run_id})", summary)]
    for name, fit in (("popularity", lambda: ranking.fit_popularity(data.train)),
                      ("implicit ALS (factors=16, regularization=0.1, alpha=1)",
                       lambda: ranking_peers.with_popularity_for_cold_users(
                           ranking_peers.fit_implicit_als(data.train, 16, 0.1, 1.0), data.train))):
        start = time.perf_counter()
        scorer = fit()
        table.append(peer_row("run", name, data, scorer, time.perf_counter() - start))
    print(f"{data.train.nnz:,} training / {data.eval_ratings.nnz:,} eval ratings, {len(data.user_ids):,} eval users, "
          f"{len(data.movie_ids):,} movies")
    print_table(table)


def print_table(table) -> None:
    print(tabulate(table, headers=["split", "model", "NDCG@10", "Recall@10", "P@10", "MAP@10", "coverage",
                                   "pop. rank", "NDCG@10 4-5*", "Recall@10 4-5*", "RMSE", "fit s"],
                   floatfmt=".4f", missingval="-"), flush=True)


def row(kind, model, metrics_all, metrics_liked, rmse, seconds):
    return ([kind, model] + [metrics_all[c] for c in ranking.METRICS]
            + [metrics_liked["ndcg"], metrics_liked["recall"], rmse, seconds])


def run_row(kind, model, summary: run_summary.RunSummary):
    """A pipeline run's row: its RankingEvaluator's figures for the pushed model, TFMA's RMSE."""
    return row(kind, model, summary.ranking_overall(), summary.ranking_overall(relevance=ranking.RELEVANT_LIKED),
               summary.metrics[RMSE], summary.seconds["Trainer"])


def peer_row(kind, model, data: ranking.EvalSet, scorer: ranking.Scorer, seconds):
    """A fitted peer's row: its lists scored by the same code, both relevances."""
    lists = data.peer_lists(scorer)
    scored = {which: data.score(lists, which)[ranking.OVERALL].as_dict()
              for which in (ranking.RELEVANT_ALL, ranking.RELEVANT_LIKED)}
    return row(kind, model, scored[ranking.RELEVANT_ALL], scored[ranking.RELEVANT_LIKED], None, seconds)


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
            table.append(run_row(kind, f"movierec ({settings[kind].name})", summary))
        for name, chosen, scorer, seconds in fitted_peers(data, train, kind):
            table.append(peer_row(kind, f"{name} ({chosen})" if chosen else name, data, scorer, seconds))
        print(f"{kind}: {len(train):,} training / {len(test):,} test ratings, {len(data.user_ids):,} test users, "
              f"{len(data.movie_ids):,} movies", flush=True)
    print_table(table)


if __name__ == "__main__":
    main()
