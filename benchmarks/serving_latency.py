"""Serving latency: in-process, and through `movierec serve` over gRPC and REST, batching off and on.

    python -m benchmarks.serving_latency [--model-dir runs/serving] [--requests 1000] [--clients 8]

The server is started from the pushed deploy files with docker-compose's flags (batching and
warmup as deployed; "off" drops --enable_batching). Per call: p50/p99 latency of sequential
requests (Predict at batch 1 and 100, recommend top-10), then requests/s of 8 concurrent clients
sending a predict/recommend mix. The slowest call is printed too: a pause of the server's (e.g. a
full garbage collection over the loaded model's objects, serving/model_server/repository.py
settle_heap) shows there before it reaches the p99. Targets (issue 22 item 6, batching off; with batching each call
also waits up to batch_timeout_micros): Predict batch 1 p99 <= 2 ms, recommend top-10 p99 <= 3 ms;
gRPC overhead (server p50 / in-process p50) <= 2x. Each row also gives the server's CPU time per
call (warmup calls included), which a loaded machine inflates much less than it does the
percentiles. A server that does not start (e.g. batching on a contract TF Serving cannot batch)
is reported with its error, not skipped.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import portpicker
from tabulate import tabulate

from serving.client import GrpcBackend, RecommenderClient, SavedModelBackend
from serving.contract import served_versions
from benchmarks.loadgen import known_ids
from serving.deploy import local_flags
from serving.rest_client import RestBackend

TARGETS_P99_MS = {"predict batch 1": 2.0, "recommend top-10": 3.0}  # batching off
OVERHEAD_TARGET = 2.0


def workloads(backend, ids, rng: np.random.Generator):
    """(name, callable) pairs through the client library, IDs drawn from the model's vocabularies."""
    client = RecommenderClient(backend)
    # Arrays once: drawing from a list converts the whole list per call (~25 ms at 116k movies),
    # which the timings would count.
    users, movies = np.asarray(list(ids.users), dtype=object), np.asarray(list(ids.movies), dtype=object)

    def predict(batch):
        return lambda: client.predict(rng.choice(users, batch).tolist(), rng.choice(movies, batch).tolist())

    return [("predict batch 1", predict(1)), ("predict batch 100", predict(100)),
            ("recommend top-10", lambda: client.recommend(str(rng.choice(users)), 10, True))]


def measure(call, requests: int, warmup: int):
    for _ in range(warmup):
        call()
    latencies = []
    for _ in range(requests):
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    ms = np.array(latencies) * 1000
    return np.percentile(ms, 50), np.percentile(ms, 99), ms.max()


def concurrent_rate(make_backend, ids, clients: int, requests_per_client: int) -> float:
    """Requests/s of `clients` threads, each with its own connection, alternating predict batch 1
    and recommend top-10."""
    errors, barrier = [], threading.Barrier(clients + 1)

    def client(number):
        backend = make_backend()
        rng = np.random.default_rng(number)
        calls = workloads(backend, ids, rng)
        mix = [calls[0][1], calls[2][1]]
        barrier.wait()
        try:
            for i in range(requests_per_client):
                mix[i % 2]()
        except Exception as e:  # reported, never hidden
            errors.append(e)
        finally:
            backend.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    return clients * requests_per_client / elapsed


class ServerProcess:
    """`movierec serve` on 127.0.0.1 with `flags`; `error` is its last log line if it did not start."""

    def __init__(self, flags, work_dir: str, label: str):
        self.port, self.rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = os.path.join(work_dir, f"server-{label}.log")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "movierec.cli", "serve", f"--port={self.port}",
                 f"--rest_api_port={self.rest_port}", *flags], stdout=log, stderr=subprocess.STDOUT)
        self.error = self._wait()

    def _wait(self, timeout_s: float = 300):
        backend = GrpcBackend(self.address, timeout_s=30)
        deadline = time.time() + timeout_s
        try:
            while time.time() < deadline:
                if self.process.poll() is not None:
                    with open(self.log) as f:
                        return [line for line in f.read().splitlines() if line.strip()][-1]
                try:
                    backend.status()
                    return None
                except Exception:  # not listening yet
                    time.sleep(0.5)
        finally:
            backend.close()
        return "did not start within 300 s"

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used so far (Linux /proc/<pid>/stat): its own
        cost per request, which a loaded machine does not inflate as it does wall times."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="runs/serving", help="serving dir of a pushed model")
    parser.add_argument("--model-name", default="movierec")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    model_dir = os.path.abspath(args.model_dir)
    base = os.path.join(model_dir, args.model_name)
    if not served_versions(base):
        sys.exit(f"{base}: no pushed model; run `make run` first")
    version = served_versions(base)[-1]
    ids = known_ids(os.path.join(base, str(version)))
    rng = np.random.default_rng(0)

    local = SavedModelBackend(base)
    in_process = {name: measure(call, args.requests, args.warmup) for name, call in workloads(local, ids, rng)}
    rows, rates, failures = [], [], []
    with tempfile.TemporaryDirectory() as work_dir:
        for batching in (False, True):
            label = f"batching {'on' if batching else 'off'}"
            # No load retries: a model the server cannot load fails at once instead of after 5 x 60 s.
            server = ServerProcess([*local_flags(model_dir, work_dir, batching), "--max_num_load_retries=0"],
                                   work_dir, label.replace(" ", "-"))
            if server.error:
                failures.append(f"{label}: server did not start: {server.error}")
                server.stop()
                continue
            try:
                backends = {"gRPC": lambda: GrpcBackend(server.address, args.model_name, 30),
                            "REST": lambda: RestBackend("127.0.0.1", server.rest_port, args.model_name, 30)}
                for api, make in backends.items():
                    backend = make()
                    for name, call in workloads(backend, ids, rng):
                        cpu_s = server.cpu_s()
                        p50, p99, worst = measure(call, args.requests, args.warmup)
                        cpu_ms = (server.cpu_s() - cpu_s) / (args.requests + args.warmup) * 1e3
                        target = TARGETS_P99_MS.get(name) if not batching else None
                        verdict = "" if target is None else ("ok" if p99 <= target else "MISSED") + f" (<= {target:g})"
                        overhead = p50 / in_process[name][0]
                        if api == "gRPC" and not batching:  # batched calls wait for their batch, by design
                            verdict += ("; " if verdict else "") + \
                                f"overhead {'ok' if overhead <= OVERHEAD_TARGET else 'MISSED'}"
                        rows.append((label, api, name, *in_process[name][:2], p50, p99, worst, cpu_ms, overhead,
                                     verdict))
                    backend.close()
                    rates.append((label, api, args.clients,
                                  concurrent_rate(make, ids, args.clients, args.requests // args.clients)))
            finally:
                server.stop()

    print(f"model {base} version {version} ({len(ids.movies):,} movies, {len(ids.users):,} users); "
          f"{args.requests} sequential requests per row")
    print(tabulate(rows, floatfmt=".2f", headers=[
        "server", "API", "call", "in-process p50 ms", "p99 ms", "server p50 ms", "p99 ms", "max ms", "server CPU ms/call",
        "p50 / in-process", "target (batching off): p99 ms; gRPC overhead <= 2x"]))
    print()
    print(tabulate(rates, floatfmt=".0f", headers=["server", "API", "clients", "requests/s (predict + recommend)"]))
    for failure in failures:
        print(failure)


if __name__ == "__main__":
    main()
