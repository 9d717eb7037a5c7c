"""A run's timeout without batching: the REST API's --rest_api_timeout_in_ms on a version served
unbatched, as a client sees it (DEADLINE_EXCEEDED), through the session callable the server keeps
per signature and timeout.

Referee: TensorFlow's DirectSession (core/common_runtime/direct_session.cc RunInternal: a run
past RunOptions.timeout_in_ms is cancelled with "Timed out waiting for notification"), which TF
Serving's REST handler relies on (model_servers/http_rest_api_handler.cc sets
run_options.timeout_in_ms from the flag). The spin model loops as long as the request asks.
"""
import grpc
import numpy as np
import pytest

from serving.model_server.server import Loader
from serving.model_server.status import ServingError
from tests import tfs_conformance_models


@pytest.fixture(scope="module")
def servable(tmp_path_factory):
    path = tfs_conformance_models.spin(str(tmp_path_factory.mktemp("spin") / "1"))
    loader = Loader(batching_options=None, warmup=False)
    servable = loader.load("spin", 1, path)
    yield servable
    loader.unload(servable)


def test_unbatched_run_past_its_timeout_is_cancelled_every_time(servable):
    """The first and a later call (the kept callable) are both cancelled; a short run with the
    same timeout and one without a timeout still answer."""
    for _ in range(2):
        with pytest.raises(ServingError) as raised:
            servable.run("spin", {"n": np.array([10 ** 6], np.int64)}, timeout_ms=100)
        assert (raised.value.code, raised.value.message) == (grpc.StatusCode.DEADLINE_EXCEEDED,
                                                              "Timed out waiting for notification")
    assert servable.run("spin", {"n": np.array([10], np.int64)}, timeout_ms=100)["total"].shape == (1,)
    assert servable.run("spin", {"n": np.array([10], np.int64)})["total"].shape == (1,)
