"""Pipeline settings: one dataclass, filled from defaults, a YAML/JSON file and CLI flags.

Every path and threshold the pipeline uses comes from here and is passed into `create_pipeline`;
nothing below reads globals or the environment.
"""
import dataclasses
import pathlib
from typing import Any, Dict, Optional, Tuple

import yaml

from models.features import DEFAULT_MOVIE_POPULARITY_BOUNDS, DEFAULT_USER_ACTIVITY_BOUNDS
from models.hyperparameters import Hyperparameters, check, is_count, is_number
from ratings import paths
from ratings import features
from ratings.schema import SCHEMA_DIR

PIPELINE_NAME = "movierec"
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
# Folders hold one or more ratings files; other CSVs beside them (movies.csv, users.csv) are not ratings.
RATINGS_FILE_PATTERN = "ratings*.csv"
# Where the Dockerfile puts ratings/schema/ inside the image container-based orchestrators run.
IMAGE_SCHEMA_DIR = "/movierec/ratings/schema"
SCHEMA_FILE = "schema.pbtxt"
SINGLE_SPLIT = "single_split"
GIVEN_SPLITS = ("train", "eval")
SPAN_PATTERN = "span-{SPAN}"
METADATA_FILE = "metadata.sqlite"


# Local or remote (gs://, s3://) paths, one way everywhere: ratings.paths.
is_remote = paths.is_remote


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """When a trained model is blessed: every model gate passes (components/model_gate).

    Each gate's settings; a threshold set to None reports its comparison without gating on it.
    Relative settings are fractions (0.05 = 5%), so they hold on any data size and rating scale;
    the absolute bounds (rmse_upper_bound, ndcg_lower_bound) do not, and are off by default.

    - rating gate (TFMA's RMSE): at most `max_rmse_increase` above the last blessed model's on
      the same eval rows; with `max_slice_rmse_increase` set, the same per slice (user activity /
      movie popularity buckets, upper bounds below), for slices of at least `min_slice_examples`
      examples only: RMSE on n ratings moves by ~0.9/sqrt(2n) from noise alone (0.1 at 42, 0.02
      at 1,000), so a smaller slice would block or pass a push by chance.
    - ranking gate (RankingEvaluator): recommend's NDCG@`ranking_k` over the whole catalogue, the
      user's training movies excluded, at most `max_relative_ndcg_decrease` below the last
      blessed model's.
    - baselines gate, fitted in the run on its training rows and scored on its eval rows: NDCG@K
      at least `ndcg_margin_over_popular` above most-popular's lists; RMSE at least
      `rmse_margin_over_bias_only` below the bias-only model's (global mean + user and movie
      biases). Negative margins accept a model within that fraction of the baseline.
    - yardstick: on the eval splits of the earlier spans in the training window (data already
      accepted, which the new span cannot move), RMSE at most `yardstick_max_relative_rmse_increase`
      above, and NDCG@K at most `yardstick_max_relative_ndcg_decrease` below, the last blessed model's.
    """
    rmse_upper_bound: Optional[float] = None
    max_rmse_increase: Optional[float] = 0.0
    max_slice_rmse_increase: Optional[float] = None
    min_slice_examples: int = 1000
    user_activity_bounds: Tuple[int, ...] = DEFAULT_USER_ACTIVITY_BOUNDS
    movie_popularity_bounds: Tuple[int, ...] = DEFAULT_MOVIE_POPULARITY_BOUNDS
    ranking_k: int = 10
    ndcg_lower_bound: Optional[float] = None
    max_relative_ndcg_decrease: Optional[float] = 0.03
    ndcg_margin_over_popular: Optional[float] = 0.05
    rmse_margin_over_bias_only: Optional[float] = 0.0
    yardstick_max_relative_rmse_increase: Optional[float] = 0.01
    yardstick_max_relative_ndcg_decrease: Optional[float] = 0.03

    def __post_init__(self):
        optional = lambda test: lambda v: v is None or (is_number(v) and test(v))
        for key in ("ranking_k", "min_slice_examples"):
            check("evaluation", self, key, is_count, "an integer of at least 1")
        check("evaluation", self, "rmse_upper_bound", optional(lambda v: v > 0), "positive, or null (off)")
        check("evaluation", self, "ndcg_lower_bound", optional(lambda v: 0 <= v <= 1), "in [0, 1], or null (off)")
        for key in ("max_rmse_increase", "max_slice_rmse_increase"):
            check("evaluation", self, key, optional(lambda v: v >= 0), "0 or more, or null (not gated)")
        for key in ("max_relative_ndcg_decrease", "yardstick_max_relative_rmse_increase",
                    "yardstick_max_relative_ndcg_decrease"):
            check("evaluation", self, key, optional(lambda v: 0 <= v <= 1), "a fraction in [0, 1], or null (not gated)")
        for key in ("ndcg_margin_over_popular", "rmse_margin_over_bias_only"):
            check("evaluation", self, key, optional(lambda v: -1 < v < 1), "a fraction in (-1, 1), or null (not gated)")
        for key in ("user_activity_bounds", "movie_popularity_bounds"):
            check("evaluation", self, key, lambda v: isinstance(v, tuple) and len(v) > 0
                  and all(is_number(b) and b >= 0 and int(b) == b for b in v) and list(v) == sorted(set(v)),
                  "a list of increasing rating counts (upper bounds of the slices)")

    def ungated(self) -> "EvaluationConfig":
        """The same settings with every gate reporting only (benchmarks measure; they do not gate)."""
        return dataclasses.replace(self, **{f.name: None for f in dataclasses.fields(self)
                                            if f.type == Optional[float]})


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """How far a new span may move from the last accepted one before the run stops, before Transform.

    The ValidationGate compares the statistics of the newly ingested examples (their train split)
    with those of the last examples it accepted, with TFDV's drift comparators: the Jensen-Shannon
    divergence of the rating distribution, the L-infinity distance of the user mix (the largest
    change in one user's share of the ratings), and optionally the number of examples as a ratio of
    the last accepted span's. None turns a check off. The defaults sit between the largest distance
    of any genuine span-to-span step (MovieLens-100K by week and by month, `data synth --spans`
    data) and the smallest of the broken spans they must stop (a defaulted, halved or doubled
    rating column; a span of one user): `python -m benchmarks.drift` prints that table. The span
    volume of genuine replays varies ~25-fold week to week, so it is off by default.

    accept: take this run's span even past the thresholds (`movierec run --accept-drift`): a real
    change of scale or source made on purpose. It is recorded in ML Metadata, and the accepted
    span is the next run's baseline.
    """
    rating_jsd: Optional[float] = 0.15
    user_id_linf: Optional[float] = 0.7
    min_examples_ratio: Optional[float] = None
    max_examples_ratio: Optional[float] = None
    accept: bool = False

    def __post_init__(self):
        for key in ("rating_jsd", "user_id_linf"):
            check("drift", self, key, lambda v: v is None or (is_number(v) and 0.0 < v <= 1.0), "in (0, 1] or null (off)")
        for key in ("min_examples_ratio", "max_examples_ratio"):
            check("drift", self, key, lambda v: v is None or (is_number(v) and v > 0), "a positive ratio or null (off)")
        if None not in (self.min_examples_ratio, self.max_examples_ratio) and \
                self.min_examples_ratio > self.max_examples_ratio:
            raise ValueError(f"drift.min_examples_ratio: {self.min_examples_ratio} is above "
                             f"drift.max_examples_ratio {self.max_examples_ratio}")
        check("drift", self, "accept", lambda v: isinstance(v, bool), "true or false")


METADATA_KINDS = ("sqlite", "mysql")


@dataclasses.dataclass(frozen=True)
class MetadataConfig:
    """Where ML Metadata lives: the run history, the cache and what later runs resolve (last
    blessed model, analyzer cache) all come from it.

    sqlite (default): a file, `<pipeline_root>/metadata.sqlite` unless `path` is set; one machine.
    mysql: a MySQL or MariaDB database that several machines or schedulers share (they must also
    share the pipeline root, where the artifacts the metadata points at live). The password is
    read from the environment variable named by `password_env` when a run connects, so settings
    files can be printed and committed without it. The run lock is then a named lock in that
    database (see movierec/runlock.py).
    """
    kind: str = "sqlite"
    path: Optional[str] = None
    host: str = ""
    port: int = 3306
    database: str = ""
    user: str = ""
    password_env: Optional[str] = "MOVIEREC_METADATA_PASSWORD"

    def __post_init__(self):
        if self.kind not in METADATA_KINDS:
            raise ValueError(f"metadata.kind: {self.kind!r} is not one of {', '.join(METADATA_KINDS)}")
        if self.kind == "sqlite":
            return
        missing = [name for name in ("host", "database", "user") if not getattr(self, name)]
        if missing:
            raise ValueError(f"metadata.{missing[0]}: required with metadata.kind mysql")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"metadata.port: {self.port!r} is not a TCP port number")
        if self.path:
            raise ValueError("metadata.path: only for metadata.kind sqlite (a file)")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    data: str = "data/movielens-100k/ratings.csv"
    # Side tables joined onto the ratings; by default movies.csv / users.csv beside the ratings.
    movies: Optional[str] = None
    users: Optional[str] = None
    pipeline_root: str = "runs/pipeline"
    serving_dir: str = "runs/serving"
    pipeline_name: str = PIPELINE_NAME
    model_name: str = PIPELINE_NAME
    # The tensorflow_model_server binary infra validation loads each candidate into; "" takes the
    # one on PATH, or else `movierec serve` (components/infra_validator).
    model_server: str = ""
    schema_dir: str = str(SCHEMA_DIR)
    # With span-<N>/ folders: train on the newest rolling_spans spans that passed validation.
    rolling_spans: int = 3
    # Hash split of ExampleGen: train/eval in proportion train_buckets : eval_buckets.
    train_buckets: int = 8
    eval_buckets: int = 2
    hyperparameters: Hyperparameters = Hyperparameters()
    evaluation: EvaluationConfig = EvaluationConfig()
    drift: DriftConfig = DriftConfig()
    metadata: MetadataConfig = MetadataConfig()
    beam_pipeline_args: Tuple[str, ...] = ()
    enable_cache: bool = True

    def __post_init__(self):
        text = lambda v: isinstance(v, str) and v != ""
        for key in ("data", "pipeline_root", "serving_dir", "pipeline_name", "model_name", "schema_dir"):
            check("config", self, key, text, "a non-empty string")
        for key in ("movies", "users"):
            check("config", self, key, lambda v: v is None or text(v), "a path, or null (beside the ratings)")
        check("config", self, "model_server", lambda v: isinstance(v, str), "a path, or '' (found on PATH)")
        for key in ("rolling_spans", "train_buckets", "eval_buckets"):
            check("config", self, key, is_count, "an integer of at least 1")
        check("config", self, "beam_pipeline_args", lambda v: isinstance(v, tuple) and all(
            isinstance(a, str) and a.startswith("--") for a in v), "a list of --flag=value strings")
        check("config", self, "enable_cache", lambda v: isinstance(v, bool), "true or false")

    @property
    def metadata_file(self) -> str:
        """ML Metadata's SQLite file: `metadata.path`, else beside the artifacts. SQLite needs a
        local filesystem (file locks, in-place page writes), so a remote pipeline root needs
        `metadata.path` set to a local file (or metadata.kind mysql)."""
        if self.metadata.path:
            if paths.is_remote(self.metadata.path):
                raise ValueError(f"metadata.path {self.metadata.path}: ML Metadata's SQLite file must be "
                                 "on a local filesystem")
            return self.metadata.path
        if paths.is_remote(self.pipeline_root):
            raise ValueError(f"pipeline_root {self.pipeline_root} is remote, and ML Metadata's SQLite file "
                             "cannot live there: set metadata.path to a local file")
        return paths.join(self.pipeline_root, METADATA_FILE)

    @property
    def push_base(self) -> str:
        """Where versions are pushed: TF Serving's model base path."""
        return paths.join(self.serving_dir, self.model_name)

    def uris(self) -> Tuple[str, ...]:
        """Every location a run reads or writes, to load the filesystems their schemes need."""
        return tuple(p for p in (self.data, self.movies, self.users, self.pipeline_root, self.serving_dir,
                                 self.schema_dir) if p)

    def input_location(self) -> Tuple[str, Dict[str, str]]:
        """(input_base, {split name: file pattern}) for ExampleGen.

        - a CSV file, or a folder of ratings*.csv: one split, hash-split into train and eval;
        - a folder of `span-<N>/` folders: the newest span, hash-split (older spans were
          ingested by earlier runs and reach training through the rolling window);
        - a folder with `train/` and `eval/` folders: the splits as given (for benchmarks against
          other libraries on the same rows).
        """
        data = paths.absolute(self.data)
        if not paths.isdir(data):
            return paths.parent(data), {SINGLE_SPLIT: paths.name(data)}
        if self.uses_spans():
            return data, {SINGLE_SPLIT: f"{SPAN_PATTERN}/{RATINGS_FILE_PATTERN}"}
        if all(paths.isdir(paths.join(data, split)) for split in GIVEN_SPLITS):
            return data, {split: f"{split}/{RATINGS_FILE_PATTERN}" for split in GIVEN_SPLITS}
        return data, {SINGLE_SPLIT: RATINGS_FILE_PATTERN}

    def uses_spans(self) -> bool:
        return paths.isdir(self.data) and bool(paths.glob(paths.join(self.data, SPAN_PATTERN.replace("{SPAN}", "*"))))

    def side_tables(self) -> Tuple[Optional[str], Optional[str]]:
        """(movies.csv, users.csv) to join, or None where there is none."""
        folder = self.input_location()[0]

        def resolve(given: Optional[str], default_name: str) -> Optional[str]:
            path = paths.absolute(given) if given else paths.join(folder, default_name)
            if given and not paths.isfile(path):
                raise FileNotFoundError(f"{path}: no such side table")
            return path if paths.isfile(path) else None

        return resolve(self.movies, features.MOVIES_FILE), resolve(self.users, features.USERS_FILE)

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)

    def absolute(self) -> "PipelineConfig":
        """The same settings with local paths made absolute (URIs stay as they are)."""
        metadata = self.metadata
        if metadata.path:
            metadata = dataclasses.replace(metadata, path=paths.absolute(metadata.path))
        return self.replace(data=paths.absolute(self.data), pipeline_root=paths.absolute(self.pipeline_root),
                            serving_dir=paths.absolute(self.serving_dir), metadata=metadata)


def _overlay(base, values: Dict[str, Any], what: str):
    if not isinstance(values, dict):
        raise ValueError(f"{what}: expected a mapping of settings, got {values!r}")
    known = {f.name for f in dataclasses.fields(base)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {what} keys: {sorted(unknown)}; known: {sorted(known)}")
    # YAML has lists where the settings hold tuples.
    values = {key: tuple(value) if isinstance(value, list) else value
              for key, value in values.items()}
    return dataclasses.replace(base, **values)


def from_dict(values: Dict[str, Any], base: PipelineConfig = PipelineConfig()) -> PipelineConfig:
    """Overlays a (possibly nested) dict of settings on `base`, rejecting unknown keys."""
    values = dict(values)
    for nested in ("hyperparameters", "evaluation", "drift", "metadata"):
        if nested in values:
            values[nested] = _overlay(getattr(base, nested), values[nested] or {}, nested)
    return _overlay(base, values, "config")


def load(path: pathlib.Path, base: PipelineConfig = PipelineConfig()) -> PipelineConfig:
    """Reads a YAML (or JSON, a subset of YAML) config file over `base`."""
    values = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    try:
        return from_dict(values, base)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def _plain(value):
    """Tuples as lists, recursively, so the YAML has no Python-specific tags."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return list(map(_plain, value)) if isinstance(value, (list, tuple)) else value


def to_yaml(config: PipelineConfig) -> str:
    return yaml.safe_dump(_plain(dataclasses.asdict(config)), sort_keys=False)
