"""Contract tests: the real tensorflow-serving-api stubs against `movierec serve` on a pushed model."""
import json
import threading

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, regression_pb2

from ratings import features
from benchmarks import loadgen
from serving import contract
from serving.client import GrpcBackend, RecommenderClient
from serving.rest_client import RestBackend
from serving.client import predict_request as build_predict_request
from serving.model_server.server import warmup_records
from tests.cli import movierec
from tests.serving_server import BATCHING, MODEL


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
    assert set(signatures.signature_def) == {  # every SignatureDef, as get_model_metadata_impl.cc lists them
        "serving_default", "regress", "transform_features", "predict_rating", "recommend",
        "similar_movies", "similar_users", "__saved_model_init_op"}
    assert set(signatures.signature_def["recommend"].inputs) == {
        "user_id", "k", "exclude_seen", "exclude_movie_ids"}
    assert response.model_spec.version.value == status.version


def test_every_signature_answers(server, ratings_sample):
    user, movie = ratings_sample.read_text().splitlines()[1].split(",")[:2]
    example = contract.rating_example(user, movie)
    call = lambda request: outputs(server.predictions.Predict(request, timeout=10))

    by_example = call(predict_request("serving_default", examples=[example]))[features.LABEL_KEY]
    by_id = call(predict_request("predict_rating", user_id=[user, "nobody"], movie_id=[movie, movie]))
    assert by_example[0] == pytest.approx(by_id[features.LABEL_KEY][0], abs=1e-5)
    assert by_id["known_user"].tolist() == [True, False]
    assert np.all(np.isfinite(by_id[features.LABEL_KEY]))

    top = call(predict_request("recommend", **contract.recommend_inputs([user], [5], [True], [[movie]])))
    assert top[features.MOVIE_ID].shape == (1, 5) and movie.encode() not in top[features.MOVIE_ID][0]
    assert all(title for title in top[features.TITLE][0])  # titles come from the joined movies.csv
    similar = call(predict_request("similar_movies", movie=[movie], k=np.array([3], np.int32)))
    assert similar["found"].tolist() == [True] and similar[features.MOVIE_ID].shape == (1, 3)
    users = call(predict_request("similar_users", user_id=[user], k=np.array([3], np.int32)))
    assert users["known_user"].tolist() == [True] and user.encode() not in users[features.USER_ID][0]

    regression = regression_pb2.RegressionRequest()
    regression.model_spec.name, regression.model_spec.signature_name = MODEL, "regress"
    regression.input.example_list.examples.add().ParseFromString(example)
    (result,) = server.predictions.Regress(regression, timeout=10).result.regressions
    assert result.value == pytest.approx(by_example[0], abs=1e-5)


def test_unknown_ids_get_fallbacks_not_errors(server):
    call = lambda request: outputs(server.predictions.Predict(request, timeout=10))
    top = call(predict_request("recommend", **contract.recommend_inputs(
        ["stranger-1", "stranger-2"], [4, 4], [False, False], [[], []])))
    assert top["known_user"].tolist() == [False, False]
    assert top[features.MOVIE_ID][0].tolist() == top[features.MOVIE_ID][1].tolist()  # bias ranking
    similar = call(predict_request("similar_movies", movie=["no such film"], k=np.array([3], np.int32)))
    assert similar["found"].tolist() == [False]


def test_not_found_and_invalid_argument_codes(server):
    """Each malformed request once (tests/test_serving_load.py floods them concurrently)."""
    backend = GrpcBackend(server.address, MODEL)
    wrong = {}
    for request in loadgen.malformed_requests(MODEL, "1", "1", BATCHING):
        code, details = loadgen.answer_code(backend, request)
        if code != request.expected:
            wrong[request.name] = f"expected {request.expected.name}, got {code.name}: {details}"
    assert wrong == {}
    # ... and the server is still healthy.
    assert RecommenderClient(backend).predict(["1"], ["1"])[0].rating > 0
    backend.close()


def test_warmup_requests_are_answered(server):
    version = contract.served_versions(server.model_base)[-1]
    logs = warmup_records(f"{server.model_base}/{version}")
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


def test_rest_api_gives_the_grpc_answers(server):
    """The REST contract: the client's own requests sent as TF Serving columnar JSON answer what
    gRPC answers; status, metadata, row format, Regress and error bodies as TF Serving sends them."""
    version = contract.served_versions(server.model_base)[-1]
    status, body = server.rest(f"/v1/models/{MODEL}")
    assert status == 200 and body["model_version_status"][0] == {
        "version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    status, body = server.rest(f"/v1/models/{MODEL}/versions/{version}/metadata")
    assert status == 200 and "recommend" in body["metadata"]["signature_def"]["signature_def"]

    rest, grpc_backend = RestBackend("127.0.0.1", server.rest_port, MODEL), GrpcBackend(server.address, MODEL)
    by_rest, by_grpc = RecommenderClient(rest), RecommenderClient(grpc_backend)
    assert by_rest.recommend("1", 5, True, ["50"]) == by_grpc.recommend("1", 5, True, ["50"])
    assert by_rest.predict(["1", "nobody"], ["50", "50"]) == by_grpc.predict(["1", "nobody"], ["50", "50"])
    assert by_rest.similar_movies("1", 3) == by_grpc.similar_movies("1", 3)

    status, body = server.rest(f"/v1/models/{MODEL}:predict", {"signature_name": "predict_rating", "instances": [
        {"user_id": "1", "movie_id": "50"}, {"user_id": "nobody", "movie_id": "50"}]})
    assert status == 200 and [row["known_user"] for row in body["predictions"]] == [True, False]
    status, body = server.rest(f"/v1/models/{MODEL}:regress", {"signature_name": "regress", "examples": [
        {features.USER_ID: "1", features.MOVIE_ID: "50"}]})
    assert status == 200 and body["results"][0] == pytest.approx(by_grpc.predict(["1"], ["50"])[0].rating, abs=1e-5)
    assert server.rest(f"/v1/models/{MODEL}:predict", {"signature_name": "nope", "instances": [1]}) == (
        400, {"error": 'Serving signature name: "nope" not found in signature def'})
    status, page = server.rest_text("/monitoring/prometheus/metrics")
    assert status == 200 and f':tensorflow:serving:request_count{{model_name="{MODEL}",status="OK"}}' in page
    rest.close()
    grpc_backend.close()


def natural_exclusions(rows):
    """exclude_movie_ids as a client without serving/contract.py writes them: each row's IDs,
    padded at the end with "" to the longest row."""
    width = max(1, *(len(row) for row in rows))
    return np.array([list(row) + [""] * (width - len(row)) for row in rows], dtype=object)


def test_concurrent_recommend_calls_are_batched_and_each_gets_its_own_answer(server, ratings_sample):
    """With batching on, concurrent calls of one signature are merged into one batch
    (batching/batching_session.cc `BatchingSession::MergeInputTensors`; exclusion widths padded
    with each request's first element, `pad_variable_length_inputs`) and the outputs cut back per
    call (`SplitOutputTensors`). The calls carry exclusions as the contract module writes them and
    as clients write them (one-row requests of any width padded at the end, two-row requests whose
    first row excludes nothing). Each call's first k columns must equal its answer alone, which must
    be the user's ranking without exclusions less the excluded movies; a response wider than its
    own k, padded with "" / -inf, shows it was merged with a call asking for more."""
    rows = [line.split(",")[:2] for line in ratings_sample.read_text().splitlines()[1:200]]
    users = sorted({user for user, _ in rows})[:12]
    movies = [movie for _, movie in rows]
    calls = []
    for i, user in enumerate(users):
        k, seen, excluded = (2, 5, 10)[i % 3], i % 2 == 0, movies[i:i + i % 4]
        inputs = contract.recommend_inputs([user], [k], [seen], [excluded])
        if i % 3 == 1:
            inputs[contract.EXCLUDE_MOVIE_IDS] = natural_exclusions([excluded])
        elif i % 3 == 2:
            inputs = contract.recommend_inputs([users[i - 1], user], [3, k], [False, seen], [[], []])
            inputs[contract.EXCLUDE_MOVIE_IDS] = natural_exclusions([[], excluded])
        calls.append(inputs)
    backend = GrpcBackend(server.address, MODEL)
    alone = [backend.call("recommend", inputs) for inputs in calls]
    for inputs, answer in zip(calls, alone):
        full = backend.call("recommend", {**inputs, "k": inputs["k"] + 4,
                                          contract.EXCLUDE_MOVIE_IDS: natural_exclusions([[]] * len(inputs["k"]))})
        for row, k in enumerate(inputs["k"]):
            leave_out = set(inputs[contract.EXCLUDE_MOVIE_IDS][row]) - {""}
            expected = [m for m in full[features.MOVIE_ID][row].astype(str) if m not in leave_out][:k]
            assert answer[features.MOVIE_ID][row][:k].astype(str).tolist() == expected
    answers, errors = [], []

    def client(number):
        own = GrpcBackend(server.address, MODEL)
        try:
            for i in [*range(number, len(calls)), *range(number)] * 3:
                answers.append((i, own.call("recommend", calls[i])))
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            errors.append(repr(e))
        finally:
            own.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    backend.close()
    assert errors == [] and len(answers) == 8 * 3 * len(calls)
    widened = 0
    for i, answer in answers:
        for row, k in enumerate(calls[i]["k"]):
            assert answer[features.MOVIE_ID].shape[1] >= k
            assert answer[features.MOVIE_ID][row][:k].tolist() == alone[i][features.MOVIE_ID][row][:k].tolist()
            np.testing.assert_allclose(answer["score"][row][:k], alone[i]["score"][row][:k], rtol=1e-5)
            assert set(answer[features.MOVIE_ID][row][k:].tolist()) <= {b""}
            assert np.all(np.isneginf(answer["score"][row][k:]))
            widened += answer[features.MOVIE_ID].shape[1] > k
    assert widened > 0


def test_rest_clients_send_exclusions_as_rows(server):
    """REST row format, one instance per user, each with its own exclusions (TF Serving's JSON
    needs every instance's list to have one length: padded at the end with "")."""
    grpc_backend = GrpcBackend(server.address, MODEL)
    expected = [RecommenderClient(grpc_backend).recommend(user, 5, False, excluded).items
                for user, excluded in (("1", ["50", "181"]), ("2", ["1"]))]
    grpc_backend.close()
    status, body = server.rest(f"/v1/models/{MODEL}:predict", {"signature_name": "recommend", "instances": [
        {"user_id": "1", "k": 5, "exclude_seen": False, "exclude_movie_ids": ["50", "181"]},
        {"user_id": "2", "k": 5, "exclude_seen": False, "exclude_movie_ids": ["1", ""]}]})
    assert status == 200, body
    assert [row[features.MOVIE_ID][:5] for row in body["predictions"]] == [[i.id for i in items] for items in expected]
