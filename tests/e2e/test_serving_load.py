"""Serving under load: concurrent clients through a hot swap, then a flood of malformed requests.

Bounded: a fixed number of requests, a deadline on every call and a timeout on each phase; the
server listens on 127.0.0.1 only (tests/serving_server.py). Latency numbers live in
benchmarks/serving_load.py, not here: these tests check that nothing fails.
"""
import time

from components.pusher.executor import publish
from benchmarks import loadgen
from serving.client import GrpcBackend, RecommenderClient
from tests.serving_server import BATCHING, MODEL

CLIENTS, REQUESTS_PER_CLIENT, FLOOD_ROUNDS = 8, 1000, 5
CALL_TIMEOUT_S, PHASE_TIMEOUT_S = 10.0, 240.0


def _ids(server) -> loadgen.Ids:
    return loadgen.known_ids(f"{server.model_base}/{max(s.version for s in server.status().model_version_status)}")


def _states(server):
    return {s.version: type(s).State.Name(s.state) for s in server.status().model_version_status}


def _settled_states(server, expected, timeout_s: float = 60.0):
    """The versions' states once they equal `expected`, or as they are at the timeout: the old
    version's unload may still be finishing when the last request returns."""
    deadline = time.monotonic() + timeout_s
    while (states := _states(server)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return states


def test_mixed_load_survives_a_version_pushed_mid_way(server):
    load = loadgen.LoadRun(server.address, MODEL, _ids(server), CLIENTS, REQUESTS_PER_CLIENT, CALL_TIMEOUT_S)
    result, swap = loadgen.load_with_swap(load, server.model_base, PHASE_TIMEOUT_S, publish)

    assert not result.timed_out
    assert len(result.all_calls()) == CLIENTS * REQUESTS_PER_CLIENT
    assert result.errors() == []
    # The new version became AVAILABLE and answered while the clients kept calling (their last quarter
    # waits for it, so a slow swap cannot land after the load), and no client went back to the old one.
    assert swap.available_s is not None, swap
    assert set(swap.answered_by) == {swap.old, swap.new}, swap
    assert result.clients_that_went_back() == []
    settled = {swap.old: "END", swap.new: "AVAILABLE"}
    assert _settled_states(server, settled) == settled


def test_malformed_requests_get_their_status_codes_and_the_server_stays_up(server):
    ids = _ids(server)
    requests = loadgen.malformed_requests(MODEL, ids.users[0], ids.movies[0], BATCHING)
    flooded = loadgen.flood(server.address, requests, CLIENTS, FLOOD_ROUNDS, CALL_TIMEOUT_S, PHASE_TIMEOUT_S)

    assert not flooded.timed_out
    assert flooded.sent == CLIENTS * FLOOD_ROUNDS * len(requests)
    assert sorted(set(flooded.wrong_codes)) == []
    backend = GrpcBackend(server.address, MODEL)
    answer = RecommenderClient(backend).recommend(ids.users[0], k=5)
    backend.close()
    assert answer.known and len(answer.items) == 5
    assert "AVAILABLE" in _states(server).values()
