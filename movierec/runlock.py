"""One run at a time per pipeline root: a lock file, held for the whole run.

The lock is an OS file lock (fasteners), so a run that was killed releases it with its process:
starting again just works, and there is no stale lock to clean up by hand.
"""
import contextlib
import datetime
import os
import pathlib

import fasteners

from movierec.errors import MovierecError

LOCK_FILE = ".run.lock"
OWNER_FILE = ".run.owner"


class RunLocked(MovierecError):
    """Another run holds the pipeline root."""


@contextlib.contextmanager
def run_lock(pipeline_root: str, wait: bool = False):
    """Holds `<pipeline_root>/.run.lock` for the duration; refuses (or waits) if held."""
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
