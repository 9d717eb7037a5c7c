"""serving/model_server/batching.py: one bad batch fails its own requests, never the queue's later ones."""
import concurrent.futures
import threading

import grpc
import numpy as np
import pytest

from serving.model_server import batching
from serving.model_server.status import ServingError


def _queue(execute, **options):
    return batching.Queue(batching.Options(**{"max_batch_size": 8, "batch_timeout_s": 0.2, **options}), execute, "test")


def _run(queue, inputs, timeout_s=10.0):
    """queue.run's outputs or error, failing the test if it gets no answer."""
    answer = []

    def call():
        try:
            answer.append(queue.run(inputs))
        except ServingError as e:
            answer.append(e)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not answer:
        queue.stop = lambda: None  # its thread is gone; nothing to stop
        pytest.fail("no answer: the queue's thread died")
    return answer[0]


def test_a_batch_whose_run_raises_fails_its_requests_and_the_next_batch_runs():
    calls = []

    def execute(inputs, timeout_ms):
        calls.append(inputs["x"].shape)
        if len(calls) == 1:
            raise ValueError("not a ServingError")
        return {"y": inputs["x"] * 2}

    queue = _queue(execute)
    try:
        refused = _run(queue, {"x": np.array([1.0])})
        assert isinstance(refused, ServingError) and refused.code == grpc.StatusCode.INTERNAL
        assert _run(queue, {"x": np.array([3.0])})["y"].tolist() == [6.0]
    finally:
        queue.stop()


def test_requests_whose_inputs_differ_in_rank_are_answered_as_if_each_came_alone():
    """With pad_variable_length_inputs TF Serving's merge of such requests is undefined
    (batching_util.cc CalculateMaxDimSizes indexes past the first task's rank), so the stand-in
    keeps them apart (docs/tf-serving-rules.md, where we knowingly differ)."""
    merged, both_queued = [], threading.Barrier(2)

    def execute(inputs, timeout_ms):
        merged.append(inputs["x"].shape)
        return {"y": inputs["x"].reshape(len(inputs["x"]), -1).sum(axis=1)}

    queue = _queue(execute, pad_variable_length_inputs=True)
    try:
        def call(value):
            both_queued.wait()
            return _run(queue, {"x": value})

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            wide, narrow = pool.map(call, [np.array([[1.0, 2.0]]), np.array([5.0])])
        assert (wide["y"].tolist(), narrow["y"].tolist()) == ([3.0], [5.0])
        assert sorted(merged) == [(1,), (1, 2)]
    finally:
        queue.stop()


def test_without_padding_requests_that_differ_in_rank_fail_their_batch_as_tf_serving_does():
    """Without padding TF Serving merges them and refuses the batch: batching_session.cc
    MergeInputTensors compares each task's shape with the first's by batching_util.cc
    AreShapesEqualExceptZeroDim, which is false for different ranks (FAILED_PRECONDITION)."""
    merged, both_queued = [], threading.Barrier(2)

    def execute(inputs, timeout_ms):
        merged.append(inputs["x"].shape)
        return {"y": inputs["x"].reshape(len(inputs["x"]), -1).sum(axis=1)}

    queue = _queue(execute, max_batch_size=2, batch_timeout_s=60.0)  # the batch runs when both are in it
    try:
        def call(value):
            both_queued.wait()
            return _run(queue, {"x": value})

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(call, [np.array([[1.0, 2.0]]), np.array([5.0])]))
        for answer in answers:
            assert isinstance(answer, ServingError) and answer.code == grpc.StatusCode.FAILED_PRECONDITION, answer
            assert answer.message.startswith("Tensors with name 'x' from different tasks have different shapes and "
                                             "padding is turned off."), answer.message
        assert merged == []
    finally:
        queue.stop()
