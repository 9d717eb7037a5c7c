"""Contract tests: the real tensorflow-serving-api stubs against `movierec serve` on a pushed model."""
import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, regression_pb2

from movierec.data import features
from serving import contract
from serving import loadgen
from serving.client import GrpcBackend, RecommenderClient
from serving.contract import rating_example
from serving.client import predict_request as build_predict_request
from serving.repository import warmup_requests
from tests.cli import movierec
from tests.serving_server import MODEL


def predict_request(signature, model=MODEL, **inputs):
    return build_predict_request(model, signature, inputs)


def outputs(response):
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def test_status_and_metadata(server):
    statuses = server.status().model_version_status
    (status,) = [s for s in statuses if s.state == s.AVAILABLE]
    assert status.version == contract.served_versions(server.model_base)[-1]
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = server.predictions.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {
        "serving_default", "regress", "transform_features", "predict_rating", "recommend",
        "similar_movies", "similar_users"}
    assert set(signatures.signature_def["recommend"].inputs) == {
        "user_id", "k", "exclude_seen", "exclude_movie_ids"}
    assert response.model_spec.version.value == status.version


def test_every_signature_answers(server, ratings_sample):
    user, movie = ratings_sample.read_text().splitlines()[1].split(",")[:2]
    example = rating_example(user, movie)
    call = lambda request: outputs(server.predictions.Predict(request, timeout=10))

    by_example = call(predict_request("serving_default", examples=[example]))[features.LABEL_KEY]
    by_id = call(predict_request("predict_rating", user_id=[user, "nobody"], movie_id=[movie, movie]))
    assert by_example[0] == pytest.approx(by_id[features.LABEL_KEY][0], abs=1e-5)
    assert by_id["known_user"].tolist() == [True, False]
    assert np.all(np.isfinite(by_id[features.LABEL_KEY]))

    top = call(predict_request("recommend", user_id=[user], k=np.int32(5), exclude_seen=True,
                               exclude_movie_ids=np.array([[movie]], dtype=object)))
    assert top[features.MOVIE_ID].shape == (1, 5) and movie.encode() not in top[features.MOVIE_ID][0]
    assert all(title for title in top[features.TITLE][0])  # titles come from the joined movies.csv
    similar = call(predict_request("similar_movies", movie=[movie], k=np.int32(3)))
    assert similar["found"].tolist() == [True] and similar[features.MOVIE_ID].shape == (1, 3)
    users = call(predict_request("similar_users", user_id=[user], k=np.int32(3)))
    assert users["known_user"].tolist() == [True] and user.encode() not in users[features.USER_ID][0]

    regression = regression_pb2.RegressionRequest()
    regression.model_spec.name, regression.model_spec.signature_name = MODEL, "regress"
    regression.input.example_list.examples.add().ParseFromString(example)
    (result,) = server.predictions.Regress(regression, timeout=10).result.regressions
    assert result.value == pytest.approx(by_example[0], abs=1e-5)


def test_unknown_ids_get_fallbacks_not_errors(server):
    call = lambda request: outputs(server.predictions.Predict(request, timeout=10))
    top = call(predict_request("recommend", user_id=["stranger-1", "stranger-2"], k=np.int32(4),
                               exclude_seen=False, exclude_movie_ids=np.zeros([2, 0], dtype=object)))
    assert top["known_user"].tolist() == [False, False]
    assert top[features.MOVIE_ID][0].tolist() == top[features.MOVIE_ID][1].tolist()  # bias ranking
    similar = call(predict_request("similar_movies", movie=["no such film"], k=np.int32(3)))
    assert similar["found"].tolist() == [False]


def test_not_found_and_invalid_argument_codes(server):
    """Each malformed request once (tests/test_serving_load.py floods them concurrently)."""
    backend = GrpcBackend(server.address, MODEL)
    wrong = {}
    for request in loadgen.malformed_requests(MODEL, "1", "1"):
        code, details = loadgen.answer_code(backend, request)
        if code != request.expected:
            wrong[request.name] = f"expected {request.expected.name}, got {code.name}: {details}"
    assert wrong == {}
    # ... and the server is still healthy.
    assert RecommenderClient(backend).predict(["1"], ["1"])[0].rating > 0
    backend.close()


def test_warmup_requests_are_answered(server):
    version = contract.served_versions(server.model_base)[-1]
    logs = warmup_requests(f"{server.model_base}/{version}")
    assert len(logs) >= 6
    for log in logs:
        request = log.predict_log.request
        request.model_spec.name = MODEL
        assert server.predictions.Predict(request, timeout=10).outputs


def test_client_commands_print_tables_and_json(server):
    table = movierec("recommend", "--user", "1", "-k", "3", "--exclude-seen", "--server", server.address)
    assert table.returncode == 0, table.stderr
    assert "Recommendations for 1" in table.stdout and "title" in table.stdout
    answer = json.loads(movierec("similar-movies", "1", "-k", "2", "--json", "--server", server.address).stdout)
    assert answer["known"] and len(answer["items"]) == 2 and answer["query_title"]
    status = movierec("status", "--server", server.address)
    assert "AVAILABLE" in status.stdout
    down = movierec("status", "--server", "127.0.0.1:1")
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
