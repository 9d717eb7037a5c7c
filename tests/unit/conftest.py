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


@pytest.fixture(scope="session")
def shared_model(shared_transform, tmp_path_factory):
    """The plainest rating model on the shared rows, fitted and exported once for test_export (its
    ids-only variant) and test_retrieval (the rating head): mf on IDs alone, its learning rate
    decaying over the fit as configs/synthetic-scale.yaml's does. A namespace: model (Keras),
    servable (loaded), path, catalogue, folder (holding catalog.npz),
    hparams, weights (as fitted), output (the TFTransformOutput)."""
    import types

    import tensorflow as tf

    from models import catalog, export
    from models.features import MOVIE_XF, RATING_XF, USER_XF
    from models.hyperparameters import Hyperparameters
    from models.rating import model as model_lib
    from tests.transform import catalogue_batch

    output = shared_transform[2]
    folder = tmp_path_factory.mktemp("shared-model")
    movies_and_users, batch = catalogue_batch(*shared_transform)
    hparams = Hyperparameters(embedding_dim=4, learning_rate=0.05, l2=0.0, epochs=30, batch_size=32,
                              learning_rate_decay="cosine")
    tf.keras.utils.set_random_seed(0)  # the fit's shuffling: one model, whichever module asks first
    model = model_lib.build_model(movies_and_users.num_users, movies_and_users.num_movies, 3.0, hparams,
                                  training_steps=model_lib.training_steps(len(batch[RATING_XF]), hparams))
    model.fit({k: batch[k] for k in (USER_XF, MOVIE_XF)}, batch[RATING_XF].reshape(-1), epochs=hparams.epochs,
              batch_size=hparams.batch_size, verbose=0)
    export.save(model, output, movies_and_users, str(folder / "model"))
    catalog.save(movies_and_users, str(folder / "catalog.npz"))
    return types.SimpleNamespace(model=model, servable=tf.saved_model.load(str(folder / "model")),
                                 path=str(folder / "model"), catalogue=movies_and_users,
                                 folder=folder, hparams=hparams, weights=model.get_weights(), output=output)
