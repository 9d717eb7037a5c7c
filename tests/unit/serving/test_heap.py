"""The server's heap: a loaded model is kept out of Python's cyclic collector, and a model unloaded is
given back.

Why: `movierec serve` is a Python process holding TensorFlow and every loaded graph (~330k objects tracked by
the cyclic collector for `make run`'s model). CPython's full collection walks all of them: measured on the
server under sequential batch-1 Predicts, a full collection every ~5 s took 75-158 ms, and the request caught
by it waited that long (a probe of sequential calls: max 131 ms against a 1.1 ms median; benchmarks/README.md,
"The server's full collections"). tensorflow_model_server, C++, has no such pause. CPython's own remedy is
`gc.freeze()` ("move all objects tracked by the garbage collector into a permanent generation ... ignored in
all future collections", Modules/gcmodule.c gc_freeze_impl; the docs advise calling it once the long-lived
state is built); its price is that frozen objects that later become cyclic garbage are never reclaimed until
`gc.unfreeze()`. So the referee here is the collector itself: which objects `gc.get_objects()` still walks,
and whether an unloaded version's graph is freed.
"""
import gc
import shutil
import weakref

import pytest

from serving.model_server import model_config
from serving.model_server.repository import ModelRepository, settle_heap
from serving.model_server.server import Loader
from tests import tfs_conformance_models


@pytest.fixture
def served(tmp_path):
    """A repository as `movierec serve` builds it, on a real SavedModel; the test process's
    collector is given back unfrozen whatever the test does."""
    tfs_conformance_models.spin(str(tmp_path / "spin" / "1"))
    loader = Loader(batching_options=None, warmup=False)
    repository = ModelRepository(model_config.single_model_config("spin", str(tmp_path / "spin")),
                                 loader.load, loader.unload, max_num_load_retries=0, on_change=settle_heap)
    try:
        yield tmp_path, repository
    finally:
        repository.stop()
        gc.unfreeze()


def walked(obj) -> bool:
    """Whether a full collection would visit `obj` (gc.get_objects lists generations 0-2, not the
    permanent one)."""
    return any(o is obj for o in gc.get_objects())


def test_a_loaded_version_is_not_walked_by_a_full_collection(served):
    _, repository = served
    repository.refresh()
    graph = repository.get("spin").session.graph
    assert gc.is_tracked(graph) and gc.get_freeze_count() > 0
    assert not walked(graph), "the loaded model's graph is still walked by every full collection"
    assert not walked(graph._nodes_by_name), "its operations' map is still walked"


def test_an_unloaded_version_is_given_back(served):
    """Version 2 replaces 1, then the base path lists none: each unloaded version's graph is freed
    by the server itself, though frozen while it served (nothing left for a later collection)."""
    root, repository = served
    repository.refresh()
    first = weakref.ref(repository.get("spin").session.graph)
    shutil.copytree(root / "spin" / "1", root / "spin" / "2")
    repository.refresh()  # loads 2, unloads 1
    assert [s.state for s in repository.states("spin")] == ["AVAILABLE", "END"]
    assert first() is None, "version 1's graph outlived its unload"
    second = weakref.ref(repository.get("spin").session.graph)
    assert not walked(second())
    shutil.rmtree(root / "spin" / "2")
    shutil.rmtree(root / "spin" / "1")
    repository.refresh()  # no version aspired: 2 is unloaded
    assert [s.state for s in repository.states("spin")] == ["END", "END"]
    assert second() is None, "version 2's graph outlived its unload"
