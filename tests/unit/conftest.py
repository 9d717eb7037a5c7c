"""Unit tests run without a network: a test that connects anywhere but this machine fails, naming
the address (a real server started by the test listens on loopback). Data comes from small files
the tests write; MovieLens itself is fetched by the e2e tests only."""
import socket

import pytest

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL_HOSTS:
            raise AssertionError(f"a unit test connected to {address}: unit tests run without a network")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


@pytest.fixture(scope="session")
def shared_transform(tmp_path_factory):
    """(raw rows, transformed rows, TFTransformOutput) of tests/transform.py SHARED_ROWS: the one
    tf.Transform run that test_export, test_retrieval and test_preprocessing read (tests/conftest.py keeps
    them on one xdist worker), instead of a run each."""
    from tests.transform import SHARED_ROWS, analyze_and_transform

    return (SHARED_ROWS, *analyze_and_transform(SHARED_ROWS, tmp_path_factory.mktemp("transform")))
