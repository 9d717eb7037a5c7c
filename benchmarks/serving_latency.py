"""Serving latency: the same calls in-process on the SavedModel and through `movierec serve`.

    python -m benchmarks.serving_latency [--model-dir runs/serving] [--requests 1000]

Prints p50/p99 latency and single-client throughput of Predict at batch 1 and 100 and of
recommend top-10, in-process and over gRPC on 127.0.0.1, and the server's overhead (p50 ratio).
Targets: Predict p99 <= 10 ms at batch 1; recommend top-10 p99 <= 20 ms; overhead <= 2x.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import portpicker
from tabulate import tabulate

from serving.contract import served_versions
from serving.client import GrpcBackend, SavedModelBackend
from serving.loadgen import known_ids

TARGETS_P99_MS = {"predict batch 1": 10.0, "recommend top-10": 20.0}


def workloads(backend, rng: np.random.Generator):
    """(name, callable) pairs; IDs drawn from the model's own catalogue, plus unknown ones."""
    catalogue = backend.call("recommend", {
        "user_id": np.array(["benchmark-unknown"], dtype=object), "k": np.array(100, np.int32),
        "exclude_seen": np.array(False), "exclude_movie_ids": np.zeros([1, 0], dtype=object)})
    movies = [m for m in catalogue["movie_id"].reshape(-1)]
    users = [str(u).encode() for u in range(1, 200)]

    def predict(batch):
        return lambda: backend.call("predict_rating", {
            "user_id": np.array(rng.choice(users, batch), dtype=object),
            "movie_id": np.array(rng.choice(movies, batch), dtype=object)})

    recommend = lambda: backend.call("recommend", {
        "user_id": np.array([rng.choice(users)], dtype=object), "k": np.array(10, np.int32),
        "exclude_seen": np.array(True), "exclude_movie_ids": np.zeros([1, 0], dtype=object)})
    return [("predict batch 1", predict(1)), ("predict batch 100", predict(100)),
            ("recommend top-10", recommend)]


def measure(call, requests: int, warmup: int):
    for _ in range(warmup):
        call()
    latencies = []
    start = time.perf_counter()
    for _ in range(requests):
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return np.percentile(ms, 50), np.percentile(ms, 99), requests / elapsed


def start_server(model_dir: str, poll_seconds: float = 2.0):
    """`movierec serve` on 127.0.0.1, and a client for it once it answers."""
    port = portpicker.pick_unused_port()
    process = subprocess.Popen([sys.executable, "-m", "movierec.cli", "serve", "--model-dir", model_dir,
                                "--port", str(port), "--poll-seconds", str(poll_seconds)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backend = GrpcBackend(f"127.0.0.1:{port}", timeout_s=30)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            backend.status()
            return process, backend
        except Exception:  # not listening yet
            time.sleep(0.5)
    process.kill()
    raise TimeoutError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="runs/serving", help="serving dir of a pushed model")
    parser.add_argument("--model-name", default="movierec")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    base = os.path.join(args.model_dir, args.model_name)
    if not served_versions(base):
        sys.exit(f"{base}: no pushed model; run `make run` first")

    rng = np.random.default_rng(0)
    local = SavedModelBackend(base)
    in_process = {name: measure(call, args.requests, args.warmup) for name, call in workloads(local, rng)}
    process, remote = start_server(args.model_dir)
    try:
        served = {name: measure(call, args.requests, args.warmup) for name, call in workloads(remote, rng)}
    finally:
        remote.close()
        process.terminate()
        process.wait()

    rows = []
    for name in in_process:
        (lp50, lp99, lqps), (sp50, sp99, sqps) = in_process[name], served[name]
        target = TARGETS_P99_MS.get(name)
        verdict = "" if target is None else ("ok" if sp99 <= target else "MISSED") + f" (p99 <= {target:g} ms)"
        rows.append((name, lp50, lp99, lqps, sp50, sp99, sqps, sp50 / lp50, verdict))
    catalogue = known_ids(os.path.join(base, str(local.last_version)))
    print(f"model {base} version {local.last_version} ({len(catalogue.movies):,} movies, "
          f"{len(catalogue.users):,} users), {args.requests} sequential requests each")
    print(tabulate(rows, floatfmt=".2f", headers=[
        "call", "in-process p50 ms", "p99 ms", "req/s", "server p50 ms", "p99 ms", "req/s",
        "overhead (p50)", "target"]))


if __name__ == "__main__":
    main()
