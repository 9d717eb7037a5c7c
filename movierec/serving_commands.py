"""`movierec serve` and the client commands: predict, recommend, similar-movies/-users, status.

Client commands talk to TF Serving (or `movierec serve`) over gRPC with `--server`, or load the
newest pushed version in-process with `--model-dir` (no server needed). `--json` prints
machine-readable output for scripts.
"""
import dataclasses
import json
import logging
import os
import signal
import threading

import click
from tabulate import tabulate

DEFAULT_SERVER = "localhost:8500"
DEFAULT_MODEL = "movierec"


def _backend(server: str, model_dir: str, model_name: str):
    from serving import client

    if model_dir:
        base = os.path.join(model_dir, model_name)
        return client.SavedModelBackend(base if os.path.isdir(base) else model_dir)
    return client.GrpcBackend(server, model_name)


def client_options(command):
    """--server / --model-dir / --model-name / --json, shared by every client command."""
    for option in reversed([
        click.option("--server", default=DEFAULT_SERVER, show_default=True,
                     help="TF Serving (or `movierec serve`) gRPC address."),
        click.option("--model-dir", type=click.Path(exists=True, file_okay=False),
                     help="Instead of a server: the serving dir (or model base path) to load "
                          "the newest pushed version from, in-process."),
        click.option("--model-name", default=DEFAULT_MODEL, show_default=True),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
    ]):
        command = option(command)
    return command


def _call(server, model_dir, model_name, ask):
    """Runs `ask(client)`; gRPC and load errors become one-line CLI errors."""
    import grpc

    from serving.client import RecommenderClient

    try:
        backend = _backend(server, model_dir, model_name)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    try:
        return ask(RecommenderClient(backend)), backend.last_version
    except grpc.RpcError as e:
        raise click.ClickException(f"{server}: {e.code().name}: {e.details()}") from e
    finally:
        backend.close()


def _print(as_json: bool, payload, table, headers, caption: str) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(caption)
        click.echo(tabulate(table, headers=headers, floatfmt=".3f"))


def _print_answer(answer, version, as_json: bool, heading: str, with_titles: bool = True) -> None:
    table = [(rank, item.id, item.title, item.score) if with_titles else (rank, item.id, item.score)
             for rank, item in enumerate(answer.items, start=1)]
    headers = ["#", "id", "title", "score"] if with_titles else ["#", "id", "score"]
    _print(as_json, {**dataclasses.asdict(answer), "model_version": version}, table, headers,
           f"{heading} (model version {version})")


@click.command()
@click.option("--user", "users", multiple=True, required=True, help="User ID (repeatable).")
@click.option("--movie", "movies", multiple=True, required=True, help="Movie ID (one per --user).")
@client_options
def predict(users, movies, server, model_dir, model_name, as_json) -> None:
    """Predicted ratings of (user, movie) pairs."""
    if len(users) != len(movies):
        raise click.UsageError("give one --movie per --user")
    ratings, version = _call(server, model_dir, model_name, lambda c: c.predict(users, movies))
    table = [(r.user_id, r.movie_id, r.rating, "yes" if r.known_user else "no (fallback)",
              "yes" if r.known_movie else "no (fallback)") for r in ratings]
    _print(as_json, {"model_version": version, "ratings": [dataclasses.asdict(r) for r in ratings]},
           table, ["user", "movie", "rating", "known user", "known movie"],
           f"model version {version}")


@click.command()
@click.option("--user", required=True, help="User ID.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--exclude-seen", is_flag=True, help="Leave out movies the user rated in training.")
@click.option("--exclude", multiple=True, help="A movie ID to leave out (repeatable).")
@client_options
def recommend(user, k, exclude_seen, exclude, server, model_dir, model_name, as_json) -> None:
    """Top-k movies for a user (unknown users get the most liked movies overall)."""
    answer, version = _call(server, model_dir, model_name,
                            lambda c: c.recommend(user, k, exclude_seen, exclude))
    heading = (f"Recommendations for {user}" if answer.known
               else f"{user} is unknown to the model: top movies overall")
    _print_answer(answer, version, as_json, heading)


@click.command("similar-movies")
@click.argument("movie")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1))
@client_options
def similar_movies(movie, k, server, model_dir, model_name, as_json) -> None:
    """Movies nearest to MOVIE (an ID or a title) by cosine similarity of embeddings."""
    answer, version = _call(server, model_dir, model_name, lambda c: c.similar_movies(movie, k))
    heading = (f"Movies similar to {answer.query} ({answer.query_title})" if answer.known
               else f"{movie}: no such movie ID or title in the model")
    _print_answer(answer, version, as_json, heading)


@click.command("similar-users")
@click.argument("user")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1))
@client_options
def similar_users(user, k, server, model_dir, model_name, as_json) -> None:
    """Users nearest to USER by cosine similarity of embeddings."""
    answer, version = _call(server, model_dir, model_name, lambda c: c.similar_users(user, k))
    heading = f"Users similar to {user}" if answer.known else f"{user}: unknown to the model"
    _print_answer(answer, version, as_json, heading, with_titles=False)


@click.command()
@click.option("--server", default=DEFAULT_SERVER, show_default=True)
@click.option("--model-name", default=DEFAULT_MODEL, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def status(server, model_name, as_json) -> None:
    """Versions of a model on a server and their state (TF Serving's GetModelStatus)."""
    import grpc
    from google.protobuf import json_format

    from serving.client import GrpcBackend

    backend = GrpcBackend(server, model_name)
    try:
        response = backend.status()
    except grpc.RpcError as e:
        raise click.ClickException(f"{server}: {e.code().name}: {e.details()}") from e
    finally:
        backend.close()
    rows = [(v.version, type(v).State.Name(v.state), v.status.error_message)
            for v in response.model_version_status]
    _print(as_json, json_format.MessageToDict(response), rows, ["version", "state", "error"],
           f"{model_name} on {server}")


def _tf_flag(name: str, help: str, default=None, type=str, boolean: bool = False):
    """A tensorflow_model_server flag, spelled as it spells it: `--name=value`, and booleans also
    bare (`--enable_batching`) or `--name=true|false`, as tensorflow's command-line parser takes them."""
    if boolean:
        return click.option(f"--{name}", name, is_flag=False, flag_value="true", default=str(default).lower(),
                            type=click.Choice(["true", "false", "1", "0"], case_sensitive=False),
                            show_default=True, help=help)
    return click.option(f"--{name}", name, default=default, type=type, show_default=default is not None, help=help)


@click.command()
@_tf_flag("port", "gRPC port.", 8500, int)
@_tf_flag("rest_api_port", "REST API port (0: no REST API).", 0, int)
@_tf_flag("model_config_file", "models.config (a ModelServerConfig text proto).")
@_tf_flag("model_config_file_poll_wait_seconds", "Re-read --model_config_file this often (0: never).", 0, int)
@_tf_flag("model_name", "With --model_base_path: the one model to serve.", "default")
@_tf_flag("model_base_path", "One model's base path (instead of --model_config_file).")
@_tf_flag("enable_batching", "Batch concurrent requests (batching session rules).", False, boolean=True)
@_tf_flag("batching_parameters_file", "BatchingParameters text proto (needs --enable_batching).")
@_tf_flag("enable_model_warmup", "Replay assets.extra/tf_serving_warmup_requests before serving.", True,
          boolean=True)
@_tf_flag("num_request_iterations_for_warmup", "Times each warmup record is replayed (0: once).", 0, int)
@_tf_flag("file_system_poll_wait_seconds", "Look for new versions this often.", 1, int)
@_tf_flag("monitoring_config_file", "MonitoringConfig text proto (Prometheus metrics on the REST port).")
@_tf_flag("max_num_load_retries", "Retries of a failed version load.", 5, int)
@_tf_flag("load_retry_interval_micros", "Wait between load retries.", 60_000_000, int)
@_tf_flag("enable_signature_method_name_check", "Regress/Classify require their method_name.", False,
          boolean=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; tensorflow_model_server has no such flag (gRPC on 0.0.0.0, "
                   "REST on localhost). 0.0.0.0 for all.")
def serve(port, rest_api_port, model_config_file, model_config_file_poll_wait_seconds, model_name, model_base_path,
          enable_batching, batching_parameters_file, enable_model_warmup, num_request_iterations_for_warmup,
          file_system_poll_wait_seconds, monitoring_config_file, max_num_load_retries, load_retry_interval_micros,
          enable_signature_method_name_check, host) -> None:
    """A stand-in for tensorflow_model_server 2.16.1: same flags, config files, gRPC and REST APIs
    (docs/tf-serving-rules.md lists the rules it follows and where it differs)."""
    from serving import batching, model_config
    from serving.metrics import Metrics
    from serving.repository import ModelRepository
    from serving.rest import RestApi, make_rest_server
    from serving.server import Core, Loader, make_grpc_server
    from serving.status import ServingError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    on = lambda flag: flag.lower() in ("true", "1")

    def fail(message: str):  # model_servers/main.cc: "Failed to start server. Error: ...", exit code 255
        click.echo(f"Failed to start server. Error: {message}", err=True)
        raise SystemExit(255)

    if not model_base_path and not model_config_file:
        fail("INVALID_ARGUMENT: Both server_options.model_base_path and server_options.model_config_file are empty!")
    if batching_parameters_file and not on(enable_batching):
        fail("INVALID_ARGUMENT: server_options.batching_parameters_file is set without setting "
             "server_options.enable_batching to true.")
    try:
        config = (model_config.read_model_server_config(model_config_file) if model_config_file
                  else model_config.single_model_config(model_name, model_base_path))
        options = batching.options_from(model_config.read_batching_parameters(batching_parameters_file)) \
            if on(enable_batching) else None
        monitoring = model_config.read_monitoring_config(monitoring_config_file)
    except (model_config.ConfigError, ServingError) as e:
        fail(str(e))
    loader = Loader(options, on(enable_model_warmup), max(num_request_iterations_for_warmup, 1))
    repository = ModelRepository(config, loader.load, loader.unload, max_num_load_retries,
                                 load_retry_interval_micros / 1e6)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (stopped.set(), repository.interrupt()))
    try:
        repository.wait_until_available()
    except RuntimeError as e:
        repository.stop()
        fail(str(e))
    if stopped.is_set():
        return
    repository.start_polling(file_system_poll_wait_seconds, model_config_file, model_config_file_poll_wait_seconds)
    core = Core(repository, Metrics(), on(enable_signature_method_name_check))
    grpc_server = make_grpc_server(core, f"{host}:{port}")
    grpc_server.start()
    click.echo(f"Running gRPC ModelServer at {host}:{port} ...", err=True)
    rest_server = None
    if rest_api_port:
        prometheus = monitoring.prometheus_config
        path = (prometheus.path or "/monitoring/prometheus/metrics") if prometheus.enable else None
        rest_server = make_rest_server(RestApi(core, path), host, rest_api_port)
        click.echo(f"Exporting HTTP/REST API at:{host}:{rest_api_port} ...", err=True)
    stopped.wait()
    if rest_server:
        rest_server.shutdown()
    grpc_server.stop(grace=5).wait()
    repository.stop()


COMMANDS = (serve, predict, recommend, similar_movies, similar_users, status)
