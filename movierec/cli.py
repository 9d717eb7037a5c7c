"""The `movierec` command line: data import, pipeline runs.

Errors a user can act on (bad data, missing files, blocked pushes) print one line and exit non-zero:
1 for errors, 3 when the run finished but the model was not blessed (so nothing was pushed),
4 when another run holds the pipeline (its root, or its shared metadata database), 5 when the new
data drifted from the last accepted data past a threshold (nothing trained or pushed).
"""
import dataclasses
import logging
import os
import pathlib
import shutil
import sys
import tempfile
import time
import traceback
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Google client libraries warn about Python 3.11's end of life on import; not actionable here.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import click  # noqa: E402

from movierec import serving_commands  # noqa: E402
from ratings import paths  # noqa: E402
from ratings.errors import EXIT_ERROR, EXIT_LOCKED, DataError, MovierecError, exit_code, one_line  # noqa: E402

DATA_FORMATS = ("movielens-100k", "movielens-1m", "movielens-latest", "csv")
# The CLI's own notices, shown on the console with the progress lines.
NOTICES = logging.getLogger("movierec")


def _log_to_file_and_console(log_dir: pathlib.Path) -> pathlib.Path:
    """Everything goes to a log file (a local one: logging appends as it goes, which object
    stores cannot); the console shows progress only."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setFormatter(_ConsoleFormatter())
    console.addFilter(_ProgressFilter())
    logging.basicConfig(level=logging.INFO, handlers=[file_handler, console], force=True)
    # TensorFlow saves and restores absl's verbosity flag around some calls; with the flag left
    # at its default, it "restores" WARNING and the progress lines stop.
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    # TensorFlow's logger prints through a handler of its own; route it through ours.
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.handlers.clear()
    tf_logger.propagate = True
    return log_file


class _ProgressFilter(logging.Filter):
    """Passes progress lines (components starting/finishing, training epochs), errors and notices."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.name == NOTICES.name:
            return True
        message = record.getMessage()
        return (message.startswith("Component ") and message.endswith(("is running.", "is finished."))
                or message.startswith(("Epoch ", "AutoRec epoch", "Warm start")))


class _ConsoleFormatter(logging.Formatter):
    """Time and the first line only: tracebacks go to the log file, not the console."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.formatTime(record, '%H:%M:%S')} {record.getMessage().splitlines()[0]}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """movierec: learn movie and user embeddings from ratings with TFX, serve them with TF Serving."""


@main.group()
def data() -> None:
    """Get ratings into the canonical CSV layout the pipeline reads."""


def _rating_range():
    from ratings import schema
    from ratings import features

    return schema.float_range(features.RATING)


@data.command("fetch")
@click.argument("dataset", type=click.Choice(["movielens-100k"]))
@click.option("--dest", type=click.Path(path_type=pathlib.Path), default=None,
              help="Output folder [default: data/<dataset>].")
def data_fetch(dataset: str, dest: pathlib.Path) -> None:
    """Download a public dataset and write ratings.csv, movies.csv, users.csv."""
    from ratings import fetch

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    dest = dest or pathlib.Path("data") / dataset
    _run_or_exit(lambda: click.echo(fetch.fetch(dataset, dest, _rating_range()).describe()))


@data.command("import")
@click.option("--format", "fmt", type=click.Choice(DATA_FORMATS), required=True,
              help="movielens-100k: u.data (+u.item, u.user); movielens-1m: ratings.dat with '::'; "
                   "movielens-latest: ratings.csv (+movies.csv); csv: the canonical layout.")
@click.argument("src", type=click.Path(path_type=pathlib.Path))
@click.option("--dest", type=click.Path(path_type=pathlib.Path), required=True,
              help="Output folder for the canonical ratings.csv, movies.csv, users.csv.")
def data_import(fmt: str, src: pathlib.Path, dest: pathlib.Path) -> None:
    """Convert ratings you already have (a file or its folder) to the canonical layout."""
    from ratings import importers

    _run_or_exit(lambda: click.echo(importers.import_dataset(fmt, src, dest, _rating_range()).describe()))


@data.command("split-spans")
@click.argument("src", type=click.Path(path_type=pathlib.Path))
@click.option("--by", type=click.Choice(sorted(["day", "week", "month"])), default="month", show_default=True)
@click.option("--dest", type=click.Path(path_type=pathlib.Path), required=True,
              help="Output folder: span-<N>/ratings.csv, plus the side tables.")
def data_split_spans(src: pathlib.Path, by: str, dest: pathlib.Path) -> None:
    """Cut a canonical ratings CSV (or its folder) into time spans, oldest first."""
    from ratings import spans

    def split():
        counts = spans.split_spans(src, dest, by)
        click.echo(f"wrote {len(counts)} spans by {by} to {dest}: " + ", ".join(
            f"span-{span} {count:,}" for span, count in counts.items()))

    _run_or_exit(split)


@data.command("synth")
@click.option("--ratings", type=click.IntRange(min=1), required=True, help="How many ratings.")
@click.option("--users", type=click.IntRange(min=1), required=True)
@click.option("--movies", type=click.IntRange(min=1), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--factors", type=click.IntRange(min=1), default=8, show_default=True,
              help="Latent factors behind the ratings.")
@click.option("--spans", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cut the history into this many equal time spans (span-<N>/ratings.csv).")
@click.option("--dest", type=click.Path(path_type=pathlib.Path), required=True)
def data_synth(ratings, users, movies, seed, factors, spans, dest) -> None:
    """Generate realistic synthetic ratings (latent factors, biases, long tail) of any size."""
    from ratings import synth

    def generate():
        started = time.monotonic()
        per_span = synth.synthesize(synth.SynthSpec(ratings, users, movies, seed, factors, spans), dest)
        click.echo(f"wrote {ratings:,} ratings ({users:,} users, {movies:,} movies) to {dest} in "
                   f"{time.monotonic() - started:.0f} s" + (": " + ", ".join(
                       f"span-{n} {count:,}" for n, count in per_span.items()) if spans > 1 else ""))

    _run_or_exit(generate)


def _run_or_exit(action) -> None:
    try:
        action()
    except (MovierecError, OSError, ValueError) as e:
        raise click.ClickException(one_line(e)) from e


def _check_data(config) -> None:
    """Fails fast, before the pipeline starts, on missing data or files that are not ratings CSVs;
    local or in a bucket (gs://, s3://), read through the filesystems the pipeline uses."""
    from tfx.dsl.io import fileio

    from ratings import records

    if not paths.exists(config.data):
        raise DataError(f"{config.data}: no such file or folder (fetch data with `movierec data fetch`)")
    input_base, patterns = config.input_location()
    for pattern in patterns.values():
        files = paths.glob(paths.join(input_base, pattern.replace("{SPAN}", "*")))
        if not files:
            raise DataError(f"{input_base}: no {pattern} files in this folder")
        for file in files:
            with fileio.open(file, "rb") as f:
                records.read_header(f.readline(), str(file))


def _check_writable(config) -> None:
    """Fails fast, before the pipeline starts, on a pipeline root or serving dir that cannot be
    written: creates each folder and a file in it, local or in a bucket. Trying is the only
    reliable test: permission bits do not bind root, and say nothing of read-only mounts, a file
    where a folder should be, or a bucket's access rules."""
    import tensorflow as tf
    from tfx.dsl.io import fileio


    for folder in (config.pipeline_root, config.serving_dir, config.push_base):
        probe = paths.join(folder, f".write-probe-{os.getpid()}")
        try:
            fileio.makedirs(folder)
            paths.write_bytes(probe, b"")
            fileio.remove(probe)
        except OSError as e:
            raise MovierecError(f"{folder}: cannot write there ({e.strerror or e})") from e
        except tf.errors.OpError as e:  # TensorFlow's filesystems, which fileio uses, raise these
            # as "<path>; <reason>" (local) or with the store's reason (remote).
            reason = e.message.strip().splitlines()[0].rsplit("; ", 1)[-1]
            raise MovierecError(f"{folder}: cannot write there ({reason})") from e


def _settings(config_files, **overrides):
    """Defaults, overlaid with each settings file in turn, then with the flags given; local
    paths made absolute, and the filesystems their schemes need loaded (s3://)."""
    from pipeline import configs

    config = configs.PipelineConfig()
    try:
        for config_file in config_files:
            config = configs.load(config_file, config)
        config = config.replace(**{k: v for k, v in overrides.items() if v is not None}).absolute()
    except ValueError as e:  # a bad setting, named by file and key: one line, no traceback
        raise click.ClickException(str(e)) from e
    paths.register_filesystems(*config.uris())
    return config


CONFIG_OPTION = click.option(
    "--config", "config_file", multiple=True, type=click.Path(exists=True, path_type=pathlib.Path),
    help="YAML/JSON settings file, repeatable (later files win), e.g. configs/movielens-100k.yaml "
         "--config configs/beam/local.yaml; `movierec config` prints every setting.")
@main.command("config")
@CONFIG_OPTION
def show_config(config_file) -> None:
    """Print the effective settings as YAML: a starting point for a --config file."""
    from pipeline import configs

    click.echo(configs.to_yaml(_settings(config_file)), nl=False)


ROOT_OPTION = click.option("--pipeline-root", help="Where artifacts and metadata go [default: runs/pipeline].")


@main.command("run")
@click.option("--data", "data_path", help="Ratings CSV; a folder of ratings*.csv; a folder of "
              "span-<N>/ folders; or one with train/ and eval/ [default: data/movielens-100k/ratings.csv].")
@ROOT_OPTION
@click.option("--serving-dir", help="TF Serving model root; versions go to <dir>/<model name>/ "
              "[default: runs/serving].")
@click.option("--runner", type=click.Choice(["local", "beam"]), default="local", show_default=True,
              help="TFX orchestrator: LocalDagRunner or BeamDagRunner.")
@CONFIG_OPTION
@click.option("--beam-arg", "beam_args", multiple=True,
              help="A Beam pipeline argument for data components (repeatable), "
                   "e.g. --beam-arg=--direct_running_mode=multi_processing.")
@click.option("--no-cache", is_flag=True, help="Re-run every component even if its inputs are unchanged.")
@click.option("--wait", is_flag=True, help="If another run holds the pipeline root, wait for it "
              "instead of exiting.")
@click.option("--accept-drift", is_flag=True, help="Take the new data even if it drifted from the last "
              "accepted data past a threshold (a change of scale or source made on purpose); recorded "
              "in ML Metadata, and the next run's baseline. Same as the setting drift.accept.")
def run(data_path, pipeline_root, serving_dir, runner, config_file, beam_args, no_cache, wait, accept_drift) -> None:
    """Run the whole pipeline: ingest, validate, transform, train, evaluate, push.

    Exit codes: 0 blessed (pushed, or already served); 1 error (bad data, validation anomalies,
    a failing component); 3 not blessed (by a model gate, or infra validation: TF Serving could
    not serve it), nothing pushed; 4 another run holds the pipeline root; 5 the new data drifted
    from the last accepted data past a threshold (the line names the feature, the distance and
    the threshold), nothing trained or pushed: fix the data, or take it with --accept-drift.
    """
    from movierec.runlock import RunLocked, run_lock

    config = _settings(config_file, data=data_path, pipeline_root=pipeline_root, serving_dir=serving_dir,
                       beam_pipeline_args=tuple(beam_args) or None, enable_cache=False if no_cache else None)
    if accept_drift:
        config = config.replace(drift=dataclasses.replace(config.drift, accept=True))
    _run_or_exit(lambda: (config.metadata.kind == "mysql" or config.metadata_file,  # SQLite: a local file
                          _check_data(config), _check_writable(config)))
    try:
        with run_lock(config, wait=wait):
            code = _run_locked(config, runner)
    except RunLocked as e:
        click.echo(f"Error: {e}", err=True)
        _exit_now(EXIT_LOCKED)
    except MovierecError as e:  # the metadata database cannot be reached for the lock
        click.echo(f"Error: {e}", err=True)
        _exit_now(EXIT_ERROR)
    _exit_now(code)


def _run_locked(config, runner: str) -> int:
    """One run, its summary and report; returns the exit code."""

    remote_logs = paths.join(config.pipeline_root, "logs") if paths.is_remote(config.pipeline_root) else None
    log_file = _log_to_file_and_console(
        pathlib.Path(tempfile.mkdtemp(prefix="movierec-log-")) if remote_logs else
        pathlib.Path(config.pipeline_root) / "logs")
    from pipeline import recovery, report, run_summary, runners

    try:
        for abandoned in recovery.abandon_interrupted(config):
            NOTICES.warning("Interrupted run: %s never finished; marked abandoned, partial outputs removed",
                            abandoned)
        runners.run(config, runner)
        error, error_code = "", 0
    except Exception as e:  # a failed component: report it in one line, with the run's state
        error, error_code = one_line(e), exit_code(e)
    summary = run_summary.summarize(config)
    if summary:
        summary.error, summary.error_code = error, error_code
        click.echo(summary.render(), err=bool(error))
        click.echo(f"  report: {report.write_report(config, summary)}", err=bool(error))
    if remote_logs:  # the whole log, copied beside the run's artifacts once it is complete
        logging.shutdown()
        log_file = _upload(log_file, remote_logs)
    code, reason = (summary.outcome() if summary else
                    (error_code or EXIT_ERROR, f"Error: {error or 'the run left no record in ML Metadata'}"))
    if error:
        reason += f"\n(full log: {log_file})"
    if reason:
        click.echo(reason, err=True)
    return code


@main.command("report")
@ROOT_OPTION
@CONFIG_OPTION
@click.option("--last", default=10, show_default=True, type=click.IntRange(min=1), help="How many runs.")
def report_command(pipeline_root, config_file, last) -> None:
    """List past runs (from ML Metadata) with their metrics, and plot RMSE across runs."""
    from tabulate import tabulate

    from pipeline import metadata, report

    config = _settings(config_file, pipeline_root=pipeline_root)
    try:
        found = metadata.exists(config)
    except ValueError as e:  # a remote pipeline root and no local metadata.path
        raise click.ClickException(str(e)) from e
    if not found:
        raise click.ClickException(f"{config.pipeline_root}: no runs yet (no {config.metadata_file})")
    rows, plot = report.history(config, last)
    click.echo(tabulate(rows, headers=report.HISTORY_HEADERS))
    if plot:
        click.echo(f"RMSE across runs: {plot}")
    click.echo(f"run reports: {report.reports_dir(config)}/<run>/report.html")


@main.command("compile")
@click.option("--target", type=click.Choice(["kubeflow-v2"]), default="kubeflow-v2", show_default=True)
@CONFIG_OPTION
@click.option("--data", "data_path", help="Ratings location the cluster reads (e.g. gs://bucket/ratings).")
@ROOT_OPTION
@click.option("--serving-dir", help="Where the cluster pushes versions (e.g. gs://bucket/serving).")
@click.option("--image", required=True, help="Container image built from this repo's Dockerfile.")
@click.option("--schedule", default="", help='Cron schedule for Vertex, e.g. "0 3 * * *".')
@click.option("--output", type=click.Path(file_okay=False), default="build/kubeflow", show_default=True)
def compile_command(target, config_file, data_path, pipeline_root, serving_dir, image, schedule, output) -> None:
    """Compile the pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines (pipeline JSON)."""
    from pipeline import kubeflow_v2_runner

    config = _settings(config_file, data=data_path, pipeline_root=pipeline_root, serving_dir=serving_dir)
    path = kubeflow_v2_runner.compile_pipeline(config, output, image, schedule)
    click.echo(f"wrote {path}" + (f" and {kubeflow_v2_runner.SCHEDULE_FILE} ({schedule})" if schedule else ""))


def _upload(local_file: pathlib.Path, remote_dir: str) -> str:
    from tfx.dsl.io import fileio


    destination = paths.join(remote_dir, local_file.name)
    fileio.makedirs(remote_dir)
    fileio.copy(str(local_file), destination, overwrite=True)
    shutil.rmtree(local_file.parent)
    return destination


def _exit_now(code: int) -> None:
    """Exits without interpreter teardown, where TensorFlow 2.16 prints spurious tracebacks
    (`AtomicFunction.__del__ ... NoneType`); everything worth keeping is flushed first."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


for _command in serving_commands.COMMANDS:
    main.add_command(_command)


def entry() -> None:
    """The `movierec` command. A process that used tensorflow-io's s3:// filesystem aborts in
    its teardown ("pure virtual method called", exit 134; tensorflow/io#2039, open for
    tensorflow-io 0.37.1 with TensorFlow 2.16), so such a process exits without one."""
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    except BaseException:
        if not paths.tensorflow_io_loaded():
            raise
        traceback.print_exc()
        code = EXIT_ERROR
    if paths.tensorflow_io_loaded():
        _exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
