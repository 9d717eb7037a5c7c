"""Serving under load: concurrent clients, a new version pushed mid-way, then malformed requests.

    python -m benchmarks.serving_load [--model-dir runs/serving] [--clients 8] [--requests 1000]

Serves a copy of the newest pushed version with `movierec serve` on 127.0.0.1 (the model dir is
left as it is). `--clients` threads send `--requests` mixed requests each (Predict on every
serving signature, Regress, GetModelMetadata, GetModelStatus; the shape the load test checks); a
quarter of the way in, the served version is published again as the next version the way the
pipeline pushes, and the clients' last quarter waits until it is AVAILABLE. Then every client
sends each malformed request `--flood-rounds` times. Prints requests/s, p50/p95/p99 latency per
request kind, errors, the swap (with the client-seconds spent waiting for it), the server's and the
clients' CPU time per request (with the throughput those allow on idle cores: on a shared machine
the wall times measure the wait for cores, the CPU times much less so) and the malformed requests'
status codes.
"""
import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
from tabulate import tabulate

from benchmarks.serving_latency import ServerProcess
from components.pusher.executor import publish
from serving.contract import served_versions
from benchmarks import loadgen
from serving.client import GrpcBackend, RecommenderClient


def serve_copy(version_dir: str, serving_dir: str, model_name: str) -> str:
    """Copies one pushed version into a scratch serving dir; returns the copy's model base path."""
    base = os.path.join(serving_dir, model_name)
    shutil.copytree(version_dir, os.path.join(base, os.path.basename(version_dir)))
    return base


def print_load(result: loadgen.LoadResult, swap: loadgen.Swap) -> None:
    errors = result.errors()
    print(f"{len(result.all_calls()):,} requests in {result.elapsed_s:.1f} s: {result.requests_per_s():.0f} "
          f"requests/s, {len(errors)} errors" + (" (TIMED OUT)" if result.timed_out else ""))
    rows = []
    for kind, ms in result.latency_ms().items():
        failed = sum(1 for call in errors if call.kind == kind)
        rows.append((kind, len(ms) + failed, *(np.percentile(ms, [50, 95, 99]) if len(ms) else [np.nan] * 3),
                     failed))
    print(tabulate(rows, floatfmt=".2f", headers=["request", "count", "p50 ms", "p95 ms", "p99 ms", "errors"]))
    for call in errors[:10]:
        print(f"  error: {call.kind}: {call.error}")
    went_back = result.clients_that_went_back()
    available = "never" if swap.available_s is None else f"{swap.available_s - swap.pushed_at_s:.1f} s later"
    first_new = "never" if swap.first_new_answer_s is None else \
        f"{swap.first_new_answer_s - swap.pushed_at_s:.1f} s later"
    print(f"hot swap: version {swap.old} -> {swap.new} pushed at {swap.pushed_at_s:.1f} s; AVAILABLE {available}; "
          f"first answer from the new version {first_new}; answers by version: {swap.answered_by}; clients "
          f"answered by an older version after a newer one: {len(went_back)}; clients waited "
          f"{result.held_s:.1f} client-s for the swap (in the elapsed time)")


def _own_cpu_s() -> float:
    """CPU seconds of this process (the client threads)."""
    times = os.times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="runs/serving", help="serving dir of a pushed model")
    parser.add_argument("--model-name", default="movierec")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000, help="per client")
    parser.add_argument("--flood-rounds", type=int, default=10, help="per client, every malformed request")
    parser.add_argument("--call-timeout", type=float, default=10.0, help="deadline of each call, seconds")
    parser.add_argument("--timeout", type=float, default=600.0, help="of the load, and of the flood, seconds")
    args = parser.parse_args()
    versions = served_versions(os.path.join(args.model_dir, args.model_name))
    if not versions:
        sys.exit(f"{args.model_dir}/{args.model_name}: no pushed model; run `make run` first")
    version_dir = os.path.join(args.model_dir, args.model_name, str(versions[-1]))
    ids = loadgen.known_ids(version_dir)

    with tempfile.TemporaryDirectory(prefix="serving-load-") as scratch:
        base = serve_copy(version_dir, scratch, args.model_name)
        server = ServerProcess([f"--model_name={args.model_name}", f"--model_base_path={base}",
                                "--file_system_poll_wait_seconds=1"], scratch, "load")
        if server.error:
            sys.exit(f"server did not start: {server.error}")
        backend = GrpcBackend(server.address, args.model_name, 30)
        try:
            print(f"model {version_dir}: {len(ids.users):,} users, {len(ids.movies):,} movies; "
                  f"{args.clients} clients x {args.requests} requests")
            load = loadgen.LoadRun(backend.target, args.model_name, ids, args.clients, args.requests,
                                   args.call_timeout)
            server_cpu, client_cpu = server.cpu_s(), _own_cpu_s()
            result, swap = loadgen.load_with_swap(load, base, args.timeout, publish)
            server_cpu, client_cpu = server.cpu_s() - server_cpu, _own_cpu_s() - client_cpu
            print_load(result, swap)
            calls = len(result.all_calls())
            print(f"CPU per request: server {server_cpu / calls * 1e3:.2f} ms (loading the pushed version "
                  f"included), clients {client_cpu / calls * 1e3:.2f} ms: at most "
                  f"{os.cpu_count() / ((server_cpu + client_cpu) / calls):,.0f} requests/s on "
                  f"{os.cpu_count()} idle cores")
            requests = loadgen.malformed_requests(args.model_name, ids.users[0], ids.movies[0], batching=False)
            flooded = loadgen.flood(backend.target, requests, args.clients, args.flood_rounds,
                                    args.call_timeout, args.timeout)
            print(f"malformed requests: {flooded.sent:,} ({len(requests)} kinds) in {flooded.elapsed_s:.1f} s, "
                  f"{len(flooded.wrong_codes)} answered with the wrong status code"
                  + (" (TIMED OUT)" if flooded.timed_out else ""))
            for wrong in sorted(set(flooded.wrong_codes)):
                print(f"  {wrong}")
            states = {s.version: type(s).State.Name(s.state) for s in backend.status().model_version_status}
            answer = RecommenderClient(backend).recommend(ids.users[0], k=10)
            print(f"afterwards: status {states}; recommend for {ids.users[0]}: {len(answer.items)} movies from "
                  f"version {backend.last_version}")
        finally:
            backend.close()
            server.stop()


if __name__ == "__main__":
    main()
