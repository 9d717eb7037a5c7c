"""One run at a time per pipeline: a lock held for the whole run, where the metadata lives.

With SQLite metadata (one machine) the lock is an OS file lock (fasteners) on the pipeline root.
With a shared MySQL/MariaDB store (several machines or schedulers) it is a named lock in that
database (GET_LOCK), held by a connection of its own for the run: the server sees every
machine's runs, and two locks on two machines' files could not.

Either way a run that was killed releases the lock with its process (the OS drops the file lock;
the server drops a named lock when its connection closes), so starting again just works and there
is no stale lock to clean up by hand.
"""
import contextlib
import datetime
import hashlib
import os
import pathlib

import fasteners

from ratings import paths
from ratings.errors import MovierecError

LOCK_FILE = ".run.lock"
OWNER_FILE = ".run.owner"
# How long one GET_LOCK call waits with --wait before asking again (MariaDB takes seconds).
WAIT_SECONDS = 30
# MySQL drops connections idle for longer than wait_timeout (8 hours by default), and a dropped
# connection releases its locks: the lock's connection is idle for the whole run, so it asks for
# the longest timeout the server allows (one year).
LOCK_CONNECTION_IDLE_SECONDS = 31536000
# MySQL and MariaDB lock names are at most 64 characters.
LOCK_NAME_LENGTH = 64


class RunLocked(MovierecError):
    """Another run holds the pipeline."""


def run_lock(config, wait: bool = False):
    """Holds the run lock of `config` (a PipelineConfig) for the duration; refuses (or waits) if held."""
    if config.metadata.kind == "mysql":
        return _database_lock(config, wait)
    # Beside the SQLite file: the pipeline root, or where metadata.path puts it (a remote
    # pipeline root holds no file locks).
    return _file_lock(paths.parent(config.metadata_file), wait)


@contextlib.contextmanager
def _file_lock(pipeline_root: str, wait: bool):
    """Holds `<pipeline_root>/.run.lock`."""
    root = pathlib.Path(pipeline_root)
    root.mkdir(parents=True, exist_ok=True)
    lock = fasteners.InterProcessLock(str(root / LOCK_FILE))
    if not lock.acquire(blocking=wait):
        owner = (root / OWNER_FILE).read_text().strip() if (root / OWNER_FILE).exists() else "unknown"
        raise RunLocked(f"another run is using {root} ({owner}); wait for it, or pass --wait")
    try:
        (root / OWNER_FILE).write_text(
            f"pid {os.getpid()}, started {datetime.datetime.now().isoformat(timespec='seconds')}")
        yield
    finally:
        lock.release()


def lock_name(config) -> str:
    """The named lock of one pipeline in one database: the same on every machine."""
    name = f"movierec/{config.metadata.database}/{config.pipeline_name}"
    if len(name) <= LOCK_NAME_LENGTH:
        return name
    return name[:LOCK_NAME_LENGTH - 17] + "~" + hashlib.sha256(name.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _database_lock(config, wait: bool):
    """Holds GET_LOCK(lock_name(config)) on a connection opened for this run alone."""
    import pymysql

    from pipeline import metadata

    settings = config.metadata
    try:
        connection = pymysql.connect(host=settings.host, port=settings.port, user=settings.user,
                                     password=metadata.password(settings), database=settings.database,
                                     autocommit=True, connect_timeout=30)
    except pymysql.MySQLError as e:
        raise MovierecError(f"{metadata.describe(config)}: cannot connect for the run lock ({e.args[-1]})") from e
    name = lock_name(config)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION wait_timeout = %s", (LOCK_CONNECTION_IDLE_SECONDS,))
            while True:
                cursor.execute("SELECT GET_LOCK(%s, %s)", (name, WAIT_SECONDS if wait else 0))
                (held,) = cursor.fetchone()
                if held == 1:
                    break
                if held is None:  # GET_LOCK's own error (e.g. the connection was killed)
                    raise MovierecError(f"{metadata.describe(config)}: GET_LOCK({name!r}) failed")
                if not wait:
                    raise RunLocked(f"another run is using pipeline {config.pipeline_name!r} in "
                                    f"{metadata.describe(config)} ({_holder(cursor, name)}); wait for it, "
                                    f"or pass --wait")
        yield
    finally:
        connection.close()  # the server releases the lock with the connection


def _holder(cursor, name: str) -> str:
    """Which connection holds the lock, and from where: the client host:port the server saw
    (visible to the same database user; otherwise only the connection id)."""
    cursor.execute("SELECT IS_USED_LOCK(%s)", (name,))
    (connection_id,) = cursor.fetchone()
    if connection_id is None:
        return "released just now"
    cursor.execute("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = %s", (connection_id,))
    row = cursor.fetchone()
    return f"lock {name!r} held by database connection {connection_id}" + (f" from {row[0]}" if row else "")
