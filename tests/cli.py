"""Running the real `movierec` command line from tests, in a fresh process like a user would."""
import subprocess
import sys

MOVIEREC = [sys.executable, "-m", "movierec.cli"]


def movierec(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([*MOVIEREC, *map(str, args)], capture_output=True, text=True, timeout=timeout)
