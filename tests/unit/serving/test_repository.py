"""Which versions `movierec serve` serves as folders come and go: TF Serving 2.16.1's own test cases
(tensorflow_serving/sources/storage_path/file_system_storage_path_source_test.cc, FSPS below, and
core/aspired_versions_manager_test.cc, AVM below), carried over as steps on real folders, with
the expected version states read from those tests and from the source they test
(file_system_storage_path_source.cc, aspired_versions_manager.cc, availability_preserving_policy.cc).

Each step changes the file system (or models.config), runs one poll of the repository (as the
server's poll thread does every --file_system_poll_wait_seconds) and compares what
GetModelStatus would list and which version a request for the latest one gets. tensorflow_model_server
sets neither `servable_versions_always_present` nor `enable_reload_servables_with_error`
(model_servers/main.cc has no flag for them), so their `false` cases are the ones carried.
The e2e counterpart under load is tests/e2e/test_tf_serving_availability.py.
"""
import dataclasses
import pathlib
import shutil
import threading
import time
from typing import Dict, List, Optional, Tuple

import grpc
import numpy as np
import pytest
from tensorflow_serving.config import model_server_config_pb2

from serving import batching
from serving.repository import ModelRepository
from serving.status import ServingError

BROKEN = "broken"


@dataclasses.dataclass
class Step:
    """File-system or config actions, then what the server must show after one poll."""
    actions: List[Tuple]
    states: Dict[int, str]  # version -> AVAILABLE | END | ERROR (END with the load's error)
    latest: Optional[int]  # the version Latest(model) resolves to; None: NOT_FOUND
    loads: Optional[Dict[int, int]] = None  # version -> successful loads so far, where it matters


@dataclasses.dataclass
class Case:
    name: str
    source: str
    policy: str
    folders: Dict[str, str]  # version folder -> content ("broken" fails the load)
    steps: List[Step]


CASES = [
    Case("no versions at startup, base path missing", "FSPS NoVersionsAtStartup (base_path_exists=false): "
         "the poll fails, nothing is aspired", "latest", {}, [Step([], {}, None)]),
    Case("no versions at startup, only a non-numeric child", "FSPS NoVersionsAtStartup (base_path_exists=true): "
         "an empty aspired-versions list", "latest", {"non_numerical_child": "ok"}, [Step([], {}, None)]),
    Case("files appear after startup", "FSPS FilesAppearAfterStartup", "latest", {},
         [Step([], {}, None), Step([("put", "3")], {3: "AVAILABLE"}, 3)]),
    Case("version folders renamed and removed, then renamed back",
         "FSPS ServableVersionDirRenamed; AVM RevertToSmallerVersionNumber (an unloaded version aspired again "
         "is loaded again)", "all", {v: "ok" for v in ("1", "2", "3", "5", "8")},
         [Step([], {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE", 5: "AVAILABLE", 8: "AVAILABLE"}, 8),
          Step([("move", "2", "2.denied"), ("move", "5", "5.denied"), ("remove", "8")],
               {1: "AVAILABLE", 2: "END", 3: "AVAILABLE", 5: "END", 8: "END"}, 3),
          Step([("move", "2.denied", "2"), ("move", "5.denied", "5")],
               {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE", 5: "AVAILABLE", 8: "END"}, 5, {2: 2, 5: 2})]),
    Case("last version removed", "FSPS LastVersionNotRemoved (servable_versions_always_present=false); "
         "AVM AspiredRemovedFull", "latest", {"42": "ok"},
         [Step([], {42: "AVAILABLE"}, 42), Step([("remove", "42")], {42: "END"}, None)]),
    Case("base path emptied, then filled again", "FSPS LastVersionNotRemoved; AVM UnaspireThenImmediatelyReaspire "
         "(the unloaded version is loaded afresh)", "latest", {"7": "ok"},
         [Step([], {7: "AVAILABLE"}, 7), Step([("move", "7", "../away-7")], {7: "END"}, None),
          Step([("move", "../away-7", "7")], {7: "AVAILABLE"}, 7, {7: 2})]),
    Case("base path moved away and back", "file_system_storage_path_source.cc PollFileSystemForServable: a "
         "base path that does not exist fails the poll (no empty aspired list is emitted), "
         "FSPS NoVersionsAtStartup / FilesAppearAfterStartup (the poll errs)", "latest", {"7": "ok"},
         [Step([], {7: "AVAILABLE"}, 7), Step([("move", ".", "../away")], {7: "AVAILABLE"}, 7),
          Step([("move", "../away", ".")], {7: "AVAILABLE"}, 7, {7: 1})]),
    Case("base path unreadable", "file_system_storage_path_source.cc PollFileSystemForServable: GetChildren's "
         "error fails the poll", "latest", {"7": "ok"},
         [Step([], {7: "AVAILABLE"}, 7), Step([("move", ".", "../away"), ("file", ".")], {7: "AVAILABLE"}, 7),
          Step([("remove", "."), ("move", "../away", ".")], {7: "AVAILABLE"}, 7, {7: 1})]),
    Case("a version removed, the other kept", "AVM AspiredRemovedPartial", "all", {"0": "ok", "1": "ok"},
         [Step([], {0: "AVAILABLE", 1: "AVAILABLE"}, 1), Step([("remove", "1")], {0: "AVAILABLE", 1: "END"}, 0)]),
    Case("revert to a smaller version number", "AVM RevertToSmallerVersionNumber", "all", {"0": "ok", "1": "ok"},
         [Step([], {0: "AVAILABLE", 1: "AVAILABLE"}, 1),
          Step([("move", "0", "../away-0")], {0: "END", 1: "AVAILABLE"}, 1),
          Step([("move", "../away-0", "0"), ("move", "1", "../away-1")], {0: "AVAILABLE", 1: "END"}, 0,
               {0: 2, 1: 1})]),
    Case("a new version that fails to load keeps the old one serving", "AVM AspireErrorDontUnload; "
         "availability_preserving_policy.cc GetNextAction", "latest", {"7": "ok"},
         [Step([], {7: "AVAILABLE"}, 7), Step([("put", "9", BROKEN)], {7: "AVAILABLE", 9: "ERROR"}, 7),
          Step([("put", "10")], {7: "END", 9: "ERROR", 10: "AVAILABLE"}, 10)]),
    Case("a failed version that stays aspired is not retried", "AVM ReloadAspiredError "
         "(enable_reload_servables_with_error=false)", "latest", {"7": "ok"},
         [Step([], {7: "AVAILABLE"}, 7), Step([("put", "9", BROKEN)], {7: "AVAILABLE", 9: "ERROR"}, 7),
          Step([("put", "9", "fixed")], {7: "AVAILABLE", 9: "ERROR"}, 7)]),
    Case("a failed version moved away and back while an older one serves is not retried",
         "aspired_versions_manager.cc HandlePendingAspiredVersionsRequests / ContainsAnyReaspiredVersions (the "
         "request that re-aspires 7 waits until 7 is unloaded, which the policy never does while 9 is aspired); "
         "AVM ReloadAspiredError", "latest", {"7": "ok"},
         [Step([], {7: "AVAILABLE"}, 7), Step([("put", "9", BROKEN)], {7: "AVAILABLE", 9: "ERROR"}, 7),
          Step([("move", "9", "../away-9")], {7: "AVAILABLE", 9: "ERROR"}, 7),
          Step([("put", "../away-9", "fixed"), ("move", "../away-9", "9")], {7: "AVAILABLE", 9: "ERROR"}, 7),
          Step([("put", "10")], {7: "END", 9: "ERROR", 10: "AVAILABLE"}, 10)]),
    Case("a failed version un-aspired, then aspired again, is loaded afresh",
         "AVM UnaspireFailedServableThenImmediatelyReaspire", "latest", {"9": BROKEN},
         [Step([], {9: "ERROR"}, None), Step([("move", "9", "../away-9")], {9: "ERROR"}, None),
          Step([("put", "../away-9", "fixed"), ("move", "../away-9", "9")], {9: "AVAILABLE"}, 9, {9: 1})]),
]


class World:
    """Model base paths under a temporary root and a repository serving them, with a loader that
    reads each version folder's `servable` file (a load fails on "broken")."""

    def __init__(self, root: pathlib.Path, policy: str, models=("m",)):
        self.root, self.policy = root, policy
        self.loads: Dict[Tuple[str, int], int] = {}
        self.repository = ModelRepository(self.config(models), self._load, lambda servable: None,
                                          max_num_load_retries=0)

    def config(self, models) -> model_server_config_pb2.ModelServerConfig:
        config = model_server_config_pb2.ModelServerConfig()
        for name in models:
            model = config.model_config_list.config.add(name=name, base_path=str(self.root / name),
                                                        model_platform="tensorflow")
            getattr(model.model_version_policy, self.policy).SetInParent()
        return config

    def _load(self, name: str, version: int, path: str):
        content = (pathlib.Path(path) / "servable").read_text()
        if content == BROKEN:
            raise ServingError(grpc.StatusCode.INTERNAL, f"{path} is broken")
        self.loads[name, version] = self.loads.get((name, version), 0) + 1
        return name, version, content

    def put(self, model: str, folder: str, content: str = "ok") -> None:
        path = self.root / model / folder
        path.mkdir(parents=True, exist_ok=True)
        (path / "servable").write_text(content)

    def act(self, model: str, action: Tuple) -> None:
        kind, *args = action
        path = lambda relative: (self.root / model / relative).resolve()
        if kind == "put":
            self.put(model, *args)
        elif kind == "move":
            path(args[0]).rename(path(args[1]))
        elif kind == "remove":
            target = path(args[0])
            target.unlink() if target.is_file() else shutil.rmtree(target)
        elif kind == "file":  # the base path is a file: it exists, but cannot be listed
            path(args[0]).write_text("not a folder")

    def states(self, model: str) -> Dict[int, str]:
        try:
            return {s.version: "ERROR" if s.error else s.state for s in self.repository.states(model)}
        except ServingError:
            return {}

    def latest(self, model: str) -> Optional[int]:
        try:
            return self.repository.get(model)[1]
        except ServingError as e:
            assert e.code == grpc.StatusCode.NOT_FOUND and e.message == f"Servable not found for request: Latest({model})"
            return None


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_versions_as_tf_serving_serves_them(case, tmp_path):
    world = World(tmp_path, case.policy)
    for folder, content in case.folders.items():
        world.put("m", folder, content)
    for number, step in enumerate(case.steps):
        for action in step.actions:
            world.act("m", action)
        world.repository.refresh()
        where = f"{case.name}, step {number} ({case.source})"
        assert world.states("m") == step.states, where
        assert world.latest("m") == step.latest, where
        for version, loads in (step.loads or {}).items():
            assert world.loads.get(("m", version), 0) == loads, where


def test_a_base_path_that_fails_the_poll_holds_back_every_model(tmp_path):
    """file_system_storage_path_source.cc PollFileSystemForConfig returns at the first servable whose
    poll fails, before any aspired versions are emitted: one source polls all models
    (server_core.cc CreateStoragePathSource), so a new version of another model waits too."""
    world = World(tmp_path, "latest", models=("a", "b"))
    world.put("a", "1")
    world.put("b", "1")
    world.repository.refresh()
    (tmp_path / "a").rename(tmp_path / "a-away")
    world.put("b", "2")
    world.repository.refresh()
    assert (world.latest("a"), world.latest("b")) == (1, 1)
    (tmp_path / "a-away").rename(tmp_path / "a")
    world.repository.refresh()
    assert (world.latest("a"), world.latest("b")) == (1, 2)


def test_a_model_removed_from_the_config_and_added_again_is_loaded_again(tmp_path):
    """FSPS ChangeSetOfServables (a removed servable gets an empty aspired-versions list,
    file_system_storage_path_source.cc UpdateConfig / UnaspireServables); server_core.cc
    AddModelsViaModelConfigList re-adds a model whose versions were unloaded before."""
    world = World(tmp_path, "latest", models=("a", "b"))
    world.put("a", "1")
    world.put("b", "3")
    world.repository.refresh()
    world.repository.set_config(world.config(["a"]))
    world.repository.refresh()
    assert world.latest("b") is None and world.states("b") == {3: "END"}
    assert world.latest("a") == 1
    world.repository.set_config(world.config(["a", "b"]))
    world.repository.refresh()
    assert world.latest("b") == 3 and world.states("b") == {3: "AVAILABLE"}
    assert world.loads[("b", 3)] == 2


def test_a_model_removed_from_the_config_is_unloaded_even_when_the_poll_fails(tmp_path):
    """The removal is applied at the config update (UpdateConfig -> UnaspireServables), not by the
    poll, so a base path that cannot be listed does not keep a removed model loaded."""
    world = World(tmp_path, "latest", models=("a", "b"))
    world.put("a", "1")
    world.put("b", "3")
    world.repository.refresh()
    (tmp_path / "a").rename(tmp_path / "a-away")
    world.repository.set_config(world.config(["a"]))
    world.repository.refresh()
    assert world.latest("b") is None and world.latest("a") == 1


def test_waiting_for_a_model_whose_base_path_is_missing_keeps_waiting(tmp_path):
    """At start, a poll that fails aspires nothing (FSPS NoVersionsAtStartup), so the model is
    waited for (server_core.cc WaitUntilModelsAvailable), not failed."""
    world = World(tmp_path, "latest")
    world.repository.refresh()
    assert world.repository.unavailable_models() == {"m": None}
    world.put("m", "4")
    world.repository.refresh()
    assert world.repository.unavailable_models() == {}


def test_unloading_a_version_answers_the_requests_it_holds():
    """A request holds its version until answered: the unload waits for it (AVM
    UnaspireThenImmediatelyReaspire pins a version with a handle; core/basic_manager.cc unloads
    once no handle is left). With batching, the version's queue answers what it holds before it
    stops, and a request that got the version just before the unload still runs."""
    queue = batching.Queue(batching.Options(max_batch_size=8, batch_timeout_s=5.0),
                           lambda inputs: {"twice": inputs["x"] * 2}, "signature")
    answers = []
    holder = threading.Thread(target=lambda: answers.append(queue.run({"x": np.array([1.0])})))
    holder.start()
    time.sleep(0.2)  # queued, waiting for its batch to fill or time out
    queue.stop()
    holder.join(timeout=10)
    late = threading.Thread(target=lambda: answers.append(queue.run({"x": np.array([3.0])})))
    late.start()
    late.join(timeout=10)
    assert [a["twice"].tolist() for a in answers] == [[2.0], [6.0]]
