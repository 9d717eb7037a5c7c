"""`movierec serve` stays up as tensorflow_model_server 2.16.1 does while its model folders come and
go, under load: a real server process (batching on, as deployed), clients calling it from several
threads without pause, and the folders moved away and back underneath it.

What TF Serving does in each case is read in its source (tensorflow_serving/ at tag 2.16.1) and in
its own tests, which tests/unit/serving/test_repository.py carries case by case:
- sources/storage_path/file_system_storage_path_source.cc PollFileSystemForServable: a base path
  that does not exist, or cannot be listed, fails the poll, and nothing is aspired or unaspired
  (so nothing is unloaded); a base path that exists but holds no version folder aspires nothing,
  and the AvailabilityPreservingPolicy then unloads every version (availability_preserving_policy.cc).
- core/aspired_versions_manager.cc FlushServables / ProcessAspiredVersionsRequest: a version
  unloaded and no longer aspired is forgotten, so when it is aspired again (its folder is back, or
  its model is back in models.config) it is loaded again.
"No failed request while a loaded version exists": in the cases where a version stays loaded, no
request may fail; where TF Serving itself unloads everything, requests may fail only with its
NOT_FOUND, and only until the version is AVAILABLE again.
"""
import subprocess
import threading
import time

import grpc
import numpy as np
import portpicker
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.client import predict_request
from tests import tfs_models
from tests.cli import MOVIEREC

MODEL = "good"
POLL_ERROR = "FileSystemStoragePathSource encountered a filesystem access error"
CLIENTS = 4
NOT_FOUND = (grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({MODEL})")


def models_config(*names) -> str:
    return "model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{{root}}/{name}" model_platform: "tensorflow" }}\n'
        for name in names) + "}\n"


class Server:
    """`movierec serve` on models.config with batching, polling the file system and the config every second."""

    def __init__(self, root):
        self.root, self.port = root, portpicker.pick_unused_port()
        self.log_path = root / "server.log"
        (root / "batching_parameters.txt").write_text(
            "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 2000 }\npad_variable_length_inputs: true\n")
        self.write_config(MODEL)
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [*MOVIEREC, "serve", f"--port={self.port}", f"--model_config_file={root}/models.config",
             "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
             "--enable_batching", f"--batching_parameters_file={root}/batching_parameters.txt",
             "--max_num_load_retries=0"], stdout=self.log, stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def write_config(self, *names) -> None:
        (self.root / "models.config.tmp").write_text(models_config(*names).replace("{root}", str(self.root)))
        (self.root / "models.config.tmp").rename(self.root / "models.config")

    def states(self):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL
        try:
            response = self.models.GetModelStatus(request, timeout=5)
        except grpc.RpcError:
            return {}
        return {s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
                for s in response.model_version_status}

    def wait(self, condition, what: str, timeout_s: float = 90) -> float:
        """Polls until condition() holds; returns the time it was seen to hold."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.process.poll() is None, "server exited"
            if condition():
                return time.time()
            time.sleep(0.2)
        raise TimeoutError(f"{what} not reached in {timeout_s} s; server log:\n{self.log_path.read_text()[-3000:]}")

    def poll_errors(self) -> int:
        return self.log_path.read_text().count(POLL_ERROR)

    def stop(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


class Load:
    """CLIENTS threads calling `recommend` on the latest version back to back; each answer is
    (time it came back, status code, details, version that answered)."""

    def __init__(self, server: Server):
        self.server, self.answers, self._stop = server, [], threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, index: int) -> None:
        request = predict_request(MODEL, "recommend", {
            "user_id": np.array([f"u{index}"], object), "k": np.array([2], np.int32),
            "exclude_movie_ids": np.array([tfs_models.MOVIES[:1 + index % 3]], object)})
        while not self._stop.is_set():
            try:
                response = self.server.predictions.Predict(request, timeout=10)
                self.answers.append((time.time(), grpc.StatusCode.OK, "", response.model_spec.version.value))
            except grpc.RpcError as e:
                self.answers.append((time.time(), e.code(), e.details(), None))
                time.sleep(0.02)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def failures(self):
        return [(code, details) for _, code, details, _ in self.answers if code != grpc.StatusCode.OK]

    def versions_after(self, moment: float):
        return {version for t, code, _, version in self.answers if t > moment and code == grpc.StatusCode.OK}

    def wait_past(self, moment: float, what: str) -> None:
        """Until the clients have had CLIENTS answers after `moment`: the window up to it is observed
        under load however slow the machine is, not slept through and hoped full."""
        self.server.wait(lambda: sum(1 for t, *_ in self.answers if t > moment) >= CLIENTS, what)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("availability")
    tfs_models.save(str(root / MODEL / "1"), tfs_models.GOOD_WARMUP)
    tfs_models.save(str(root / MODEL / "007"), tfs_models.GOOD_WARMUP)
    server = Server(root)
    server.wait(lambda: server.states().get(7) == "AVAILABLE", "version 7 AVAILABLE", timeout_s=180)
    yield server
    server.stop()
    assert server.process.returncode == 0


@pytest.fixture
def steady(server):
    """Each case starts from, and leaves, the same state: models.config lists the model, its base path
    holds versions 1 and 7 (as folder 007), and version 7 answers."""
    yield server
    base, away = server.root / MODEL, server.root / "away"
    if base.is_file():
        base.unlink()
    if (away / MODEL).is_dir() and not base.exists():
        (away / MODEL).rename(base)
    for folder in ("1", "007"):
        if (away / folder).is_dir():
            (away / folder).rename(base / folder)
    server.write_config(MODEL)
    server.wait(lambda: server.states().get(7) == "AVAILABLE", "version 7 AVAILABLE again")


def version_states(server: Server, *versions):
    """The states of these versions (the server also lists versions earlier cases unloaded)."""
    states = server.states()
    return tuple(states.get(version) for version in versions)


def wait_for_failed_polls(server: Server, before: int) -> None:
    """Until the server has polled twice while the base path was missing (TF Serving logs each
    failed poll with POLL_ERROR); a server that never logs it is given 60 s, sixty polls (a slow
    machine's polls come late, and a correct server ends the wait as soon as it logs them)."""
    deadline = time.time() + 60
    while time.time() < deadline and server.poll_errors() < before + 2:
        time.sleep(0.2)


@pytest.mark.parametrize("unreadable", [False, True], ids=["base path moved away and back",
                                                         "base path unreadable for a while"])
def test_a_base_path_that_cannot_be_listed_keeps_serving(steady, unreadable):
    """PollFileSystemForServable: FileExists fails (the base path moved away), or the base path
    exists but GetChildren fails (here it is a file for a while) -> the poll errs -> nothing changes."""
    server, away = steady, steady.root / "away"
    away.mkdir(exist_ok=True)
    errors = server.poll_errors()
    with Load(server) as load:
        load.wait_past(time.time(), "the clients' first answers")
        (server.root / MODEL).rename(away / MODEL)
        if unreadable:
            (server.root / MODEL).write_text("not a folder")
        wait_for_failed_polls(server, errors)
        if unreadable:
            (server.root / MODEL).unlink()
        (away / MODEL).rename(server.root / MODEL)
        load.wait_past(time.time() + 2, "answers 2 s (two polls) after the base path is back")
    assert load.failures() == []
    assert server.poll_errors() >= errors + 2
    assert server.states().get(7) == "AVAILABLE"
    assert {version for *_, version in load.answers} == {7}


def test_newest_version_moved_away_and_back_is_served_again(steady):
    """Latest policy: without 007 version 1 is aspired, loaded, then 7 unloaded (availability
    preserving); with 007 back, 7 is aspired again and loaded again (AVM RevertToSmallerVersionNumber,
    FSPS ServableVersionDirRenamed); no request fails at any point."""
    server, away = steady, steady.root / "away"
    away.mkdir(exist_ok=True)
    with Load(server) as load:
        load.wait_past(time.time(), "the clients' first answers")
        (server.root / MODEL / "007").rename(away / "007")
        server.wait(lambda: version_states(server, 1, 7) == ("AVAILABLE", "END"), "version 1 served, 7 unloaded")
        (away / "007").rename(server.root / MODEL / "007")
        back = server.wait(lambda: version_states(server, 1, 7) == ("END", "AVAILABLE"), "version 7 served again")
        load.wait_past(back + 1, "answers a second after version 7 is back")
    assert load.failures() == []
    assert load.versions_after(back + 0.5) == {7}


def test_base_path_emptied_and_refilled_loads_again(steady):
    """An empty listing aspires nothing: TF Serving unloads every version (FSPS LastVersionNotRemoved,
    AVM AspiredRemovedFull) and answers NOT_FOUND; the folders back, the version is loaded again
    (AVM UnaspireThenImmediatelyReaspire)."""
    server, away = steady, steady.root / "away"
    away.mkdir(exist_ok=True)
    with Load(server) as load:
        load.wait_past(time.time(), "the clients' first answers")
        for folder in ("1", "007"):
            (server.root / MODEL / folder).rename(away / folder)
        server.wait(lambda: server.states().get(7) == "END", "version 7 unloaded")
        for folder in ("1", "007"):
            (away / folder).rename(server.root / MODEL / folder)
        back = server.wait(lambda: server.states().get(7) == "AVAILABLE", "version 7 loaded again")
        load.wait_past(back + 1, "answers a second after version 7 is back")
    assert set(load.failures()) <= {NOT_FOUND}
    assert all(t <= back + 1 for t, code, *_ in load.answers if code != grpc.StatusCode.OK)
    assert load.versions_after(back + 0.5) == {7}


def test_model_removed_from_config_and_added_again_loads_again(steady):
    """server_core.cc ReloadConfig: a removed model's versions are unaspired (FSPS ChangeSetOfServables)
    and unloaded; added again, they are aspired and loaded again."""
    server = steady
    with Load(server) as load:
        load.wait_past(time.time(), "the clients' first answers")
        server.write_config()
        server.wait(lambda: server.states().get(7) == "END", "the removed model unloaded")
        server.write_config(MODEL)
        back = server.wait(lambda: server.states().get(7) == "AVAILABLE", "the model loaded again")
        load.wait_past(back + 1, "answers a second after the model is back")
    assert set(load.failures()) <= {NOT_FOUND}
    assert all(t <= back + 1 for t, code, *_ in load.answers if code != grpc.StatusCode.OK)
    assert load.versions_after(back + 0.5) == {7}
