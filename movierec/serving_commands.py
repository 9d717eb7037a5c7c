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


@click.command()
@click.option("--model-dir", required=True, type=click.Path(file_okay=False),
              help="Serving dir (<dir>/<model>/<version>/) or one model's base path.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 for all).")
@click.option("--port", default=8500, show_default=True, type=int)
@click.option("--poll-seconds", default=2.0, show_default=True, help="How often to look for new versions.")
def serve(model_dir, host, port, poll_seconds) -> None:
    """Serve pushed models over TF Serving's gRPC API (a local stand-in for tensorflow/serving)."""
    from serving.repository import ModelRepository
    from serving.server import make_server, replay_warmup

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    repository = ModelRepository(model_dir, replay_warmup)
    repository.start(poll_seconds)
    if not repository.model_dirs():
        click.echo(f"Waiting for models under {model_dir} ...", err=True)
    server = make_server(repository, f"{host}:{port}")
    server.start()
    click.echo(f"Serving {model_dir} on {host}:{port} (gRPC); Ctrl-C to stop", err=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop(grace=5).wait()
    repository.stop()


COMMANDS = (serve, predict, recommend, similar_movies, similar_users, status)
