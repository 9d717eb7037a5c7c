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


HOST_FLAG = "--host="  # ours: tensorflow_model_server has none (gRPC on 0.0.0.0, REST on localhost)


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []},
               add_help_option=False)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def serve(argv) -> None:
    """A stand-in for tensorflow_model_server 2.16.1: the same flags (`movierec serve --help`
    lists them, and which do nothing here), config files, gRPC and REST APIs
    (docs/tf-serving-rules.md lists the rules it follows and where it differs). One flag of its
    own: --host=ADDRESS (default 127.0.0.1; 0.0.0.0 for all interfaces)."""
    from serving.model_server import flags

    host = "127.0.0.1"
    rest = []
    for argument in argv:
        if argument.startswith(HOST_FLAG):
            host = argument[len(HOST_FLAG):]
        else:
            rest.append(argument)
    values, unknown, errors, ok = flags.parse(rest)
    for error in errors:
        click.echo(f"E {error}", err=True)
    if not ok:  # main.cc: the usage on stdout, exit status -1 (255)
        click.echo(flags.usage(), nl=False)
        raise SystemExit(255)
    if values["version"]:
        from importlib import metadata
        click.echo(flags.version_text(metadata.version("tensorflow")), nl=False)
        return
    if unknown:  # main.cc: reported, and the server starts anyway
        click.echo(f"unknown argument: {unknown[0]}\n" + flags.usage(), nl=False)
    _serve(values, host)


def _serve(flag_values, host: str) -> None:
    from serving.model_server import batching, model_config
    from serving.model_server.metrics import Metrics
    from serving.model_server.repository import ModelRepository, settle_heap
    from serving.model_server.rest import RestApi, make_rest_server
    from serving.model_server.server import Core, Loader, make_grpc_server, server_credentials, session_config
    from serving.model_server.status import ServingError
    from serving.model_server.flags import channel_arguments

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    f = flag_values

    def fail(message: str):  # model_servers/main.cc: "Failed to start server. Error: <status>" on stdout, -1
        click.echo(f"Failed to start server. Error: {message}")
        raise SystemExit(255)

    # model_servers/server.cc Server::BuildAndStart, in its order.
    if f["port"] == 0 and not f["grpc_socket_path"]:
        fail("INVALID_ARGUMENT: At least one of server_options.grpc_port or server_options.grpc_socket_path "
             "must be set.")
    if f["use_alts_credentials"] and f["ssl_config_file"]:
        fail("INVALID_ARGUMENT: Either use_alts_credentials must be false or ssl_config_file must be empty.")
    if not f["model_base_path"] and not f["model_config_file"]:
        fail("INVALID_ARGUMENT: Both server_options.model_base_path and server_options.model_config_file are empty!")
    if f["batching_parameters_file"] and not f["enable_batching"]:
        fail("INVALID_ARGUMENT: server_options.batching_parameters_file is set without setting "
             "server_options.enable_batching to true.")
    if f["tensorflow_intra_op_parallelism"] > 0 and f["tensorflow_inter_op_parallelism"] > 0 and \
            f["tensorflow_session_parallelism"] > 0:
        fail("INVALID_ARGUMENT: Either configure server_options.tensorflow_session_parallelism or "
             "(server_options.tensorflow_intra_op_parallelism, server_options.tensorflow_inter_op_parallelism) "
             "separately. You cannot configure all.")
    try:
        config = (model_config.read_model_server_config(f["model_config_file"]) if f["model_config_file"]
                  else model_config.single_model_config(f["model_name"], f["model_base_path"]))
        options = batching.options_from(model_config.read_batching_parameters(f["batching_parameters_file"])) \
            if f["enable_batching"] else None
        session = session_config(model_config.read_session_config(f["tensorflow_session_config_file"]),
                                 f["tensorflow_session_parallelism"], f["tensorflow_intra_op_parallelism"],
                                 f["tensorflow_inter_op_parallelism"])
        monitoring = model_config.read_monitoring_config(f["monitoring_config_file"])
        credentials = server_credentials(model_config.read_ssl_config(f["ssl_config_file"]))
    except model_config.ConfigError as e:
        click.echo(f"E {e.log_line}", err=True)
        fail(e.status)
    except ServingError as e:
        fail(f"{e.code_name}: {e.message}")
    metrics = Metrics()
    loader = Loader(options, f["enable_model_warmup"], max(f["num_request_iterations_for_warmup"], 1),
                    [tag for tag in f["saved_model_tags"].split(",")], metrics, session)
    repository = ModelRepository(config, loader.load, loader.unload, f["max_num_load_retries"],
                                 max(f["load_retry_interval_micros"], 0) / 1e6, on_change=settle_heap)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (stopped.set(), repository.interrupt()))
    try:
        repository.wait_until_available()
    except RuntimeError as e:
        repository.stop()
        fail(f"UNKNOWN: {e}")
    if stopped.is_set():
        return
    repository.start_polling(f["file_system_poll_wait_seconds"], f["model_config_file"],
                             f["model_config_file_poll_wait_seconds"])
    core = Core(repository, metrics, f["enable_signature_method_name_check"])
    addresses = ([f"{host}:{f['port']}"] if f["port"] else []) + \
        ([f"unix:{f['grpc_socket_path']}"] if f["grpc_socket_path"] else [])
    grpc_server = make_grpc_server(core, addresses, f["grpc_max_threads"], channel_arguments(f["grpc_channel_arguments"]),
                                   credentials, f["enable_grpc_healthcheck_service"])
    grpc_server.start()
    for address in addresses:
        click.echo(f"Running gRPC ModelServer at {address} ...", err=True)
    rest_server = None
    if f["rest_api_port"]:
        if f["rest_api_port"] == f["port"]:
            click.echo("E server_options.http_port cannot be same as grpc_port. Please use a different port for "
                       "HTTP/REST API. Skipped exporting HTTP/REST API.", err=True)
        else:
            prometheus = monitoring.prometheus_config
            path = (prometheus.path or "/monitoring/prometheus/metrics") if prometheus.enable else None
            rest_server = make_rest_server(RestApi(core, path, f["rest_api_timeout_in_ms"],
                                                   f["rest_api_enable_cors_support"]),
                                           host, f["rest_api_port"], f["rest_api_num_threads"])
            click.echo(f"Exporting HTTP/REST API at:{host}:{f['rest_api_port']} ...", err=True)
    stopped.wait()
    if rest_server:
        rest_server.shutdown()
    grpc_server.stop(grace=5).wait()
    repository.stop()


COMMANDS = (serve, predict, recommend, similar_movies, similar_users, status)
