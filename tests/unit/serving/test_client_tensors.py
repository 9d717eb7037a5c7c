"""The client's tensors, built and read without tf.make_tensor_proto / tf.make_ndarray, are the
ones TensorFlow's functions give: every request the client sends is byte for byte the request
tf.make_tensor_proto would build, and every answer reads to the array tf.make_ndarray gives.

Referee: TensorFlow's own functions (tensor_util.py make_tensor_proto and MakeNdarray, the ones
the client used before), run on the same arrays and protos; the protos cover what clients send
(IDs with non-ASCII and empty strings, k, exclude_seen, the 2-D exclusion rows padded with ""),
every numeric dtype at batch 1 (typed fields) and above (tensor_content), empty and 0-d arrays,
and what the server answers (its typed fields, servables/tensorflow/predict_util.cc).
"""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2

from serving import contract
from serving.contract import ndarray, predict_request, request_tensor
from serving.model_server.server import tensor_proto as answer_tensor
from tests.helpers import raw_tensor

NUMERIC = [np.float32, np.float64, np.int32, np.int64, np.int8, np.int16, np.uint8, np.uint16,
           np.uint32, np.uint64]
ARRAYS = {
    "user ID": np.array(["196"], dtype=object),
    "IDs, non-ASCII and empty": np.array(["Amélie (2001)", "東京物語", "", "a b"], dtype=object),
    "bytes IDs": np.array([b"\xff\x00raw", b""], dtype=object),
    "str and bytes mixed": np.array(["x", b"y"], dtype=object),
    "unicode dtype": np.array(["ab", "Ünï"]),
    "bytes dtype": np.array([b"ab", b"c"]),
    "exclusion rows padded with ''": contract.exclusions([["242"], ["302", "377"], []]),
    "one empty exclusion cell": contract.exclusions([[]]),
    "recommend k": np.array([10], np.int32),
    "exclude_seen": np.array([True]),
    "bools": np.array([True, False, True]),
    "empty strings [0]": np.array([], dtype=object),
    "empty float [2, 0]": np.zeros([2, 0], np.float32),
    "empty bool [0]": np.array([], bool),
    "0-d float": np.array(2.5, np.float32),
    "0-d string": np.array("only", dtype=object),
    "float specials": np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45], np.float32),
    "non-contiguous int64": np.arange(6, dtype=np.int64).reshape(2, 3).T,
    "float16 (TensorFlow's path)": np.array([1.5, -2], np.float16),
    "complex64 (TensorFlow's path)": np.array([1 + 2j], np.complex64),
    **{f"{np.dtype(t).name} {shape}": (np.arange(int(np.prod(shape))) * 3 + 1).astype(t).reshape(shape)
       for t in NUMERIC for shape in ([1], [1, 1], [3], [2, 3])},
    "int extremes": np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max], np.int64),
}
OTHER_VALUES = {  # not arrays: TensorFlow's own conversion, passed through
    "list of str": ["a", "é"], "list of int": [1, 2], "list of float": [1.5], "numpy scalar": np.float32(3),
    "a TensorProto": tf.make_tensor_proto(np.array([[1, 2]], np.int32)),
}


def _same_array(got: np.ndarray, want: np.ndarray) -> None:
    assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape
    if want.dtype == object:
        assert [type(v) for v in got.reshape(-1)] == [type(v) for v in want.reshape(-1)]
        assert got.tolist() == want.tolist()
    else:
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("case", sorted({**ARRAYS, **OTHER_VALUES}))
def test_a_request_is_byte_for_byte_what_tf_make_tensor_proto_builds(case):
    value = {**ARRAYS, **OTHER_VALUES}[case]
    want = tf.make_tensor_proto(value)
    assert request_tensor(value).SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
    reference = predict_request("movierec", "recommend", {})
    reference.inputs["x"].CopyFrom(want)
    reference.inputs["k"].CopyFrom(tf.make_tensor_proto(np.array([5], np.int32)))
    request = predict_request("movierec", "recommend", {"x": value, "k": np.array([5], np.int32)})
    assert request.SerializeToString(deterministic=True) == reference.SerializeToString(deterministic=True)


def test_a_value_tensorflow_cannot_convert_is_refused_as_tensorflow_refuses_it():
    for value in (np.array(["a", 1], dtype=object), np.array([None], dtype=object)):
        with pytest.raises(TypeError) as theirs:
            tf.make_tensor_proto(value)
        with pytest.raises(TypeError) as ours:
            request_tensor(value)
        assert str(ours.value) == str(theirs.value)


ANSWERS = {  # forms a TensorProto may take that neither builder above gives
    "one value for [3]": raw_tensor(types_pb2.DT_FLOAT, [3], "float_val", [1.5]),
    "two values for [4]": raw_tensor(types_pb2.DT_INT64, [4], "int64_val", [7, 8]),
    "no values for [2]": raw_tensor(types_pb2.DT_INT32, [2]),
    "one string for [2, 2]": raw_tensor(types_pb2.DT_STRING, [2, 2], "string_val", [b"s"]),
    "strings with NUL and invalid UTF-8": raw_tensor(types_pb2.DT_STRING, [2], "string_val", [b"a\x00", b"\xff"]),
    "int8 in int_val": raw_tensor(types_pb2.DT_INT8, [2], "int_val", [-5, 7]),
    "bool in tensor_content": raw_tensor(types_pb2.DT_BOOL, [2], content=b"\x01\x00"),
    "half in half_val": raw_tensor(types_pb2.DT_HALF, [1], "half_val", [0x3C00]),
}
BROKEN = {
    "too many values": raw_tensor(types_pb2.DT_FLOAT, [2], "float_val", [1, 2, 3]),
    "tensor_content too short": raw_tensor(types_pb2.DT_FLOAT, [3], content=b"\x00" * 8),
    "tensor_content not a whole value": raw_tensor(types_pb2.DT_INT32, [1], content=b"\x00" * 5),
}


@pytest.mark.parametrize("case", sorted(ARRAYS))
def test_an_answer_reads_to_what_tf_make_ndarray_gives(case):
    array = ARRAYS[case]
    for proto in (answer_tensor(array), tf.make_tensor_proto(array)):  # the server's typed fields; tensor_content
        _same_array(ndarray(proto), tf.make_ndarray(proto))


@pytest.mark.parametrize("case", sorted(ARRAYS))
def test_an_answer_written_into_the_response_has_tensorflows_dtype_and_shape(case):
    """The server writes each output in place into the response's field: its dtype and
    tensor_shape are make_tensor_proto's (the shape set even for a 0-d array, as TF Serving's
    Tensor::AsProtoField sets it), its values make_ndarray's, and its bytes those of the same
    answer built on its own."""
    array, want = ARRAYS[case], tf.make_tensor_proto(ARRAYS[case])
    response = predict_pb2.PredictResponse()
    got = answer_tensor(array, response.outputs["x"])
    assert got is response.outputs["x"]
    assert got.dtype == want.dtype and got.HasField("tensor_shape")
    assert got.tensor_shape.SerializeToString() == want.tensor_shape.SerializeToString()
    _same_array(ndarray(got), tf.make_ndarray(want))
    assert got.SerializeToString() == answer_tensor(array).SerializeToString()


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_every_other_form_reads_as_tensorflow_reads_it(case):
    _same_array(ndarray(ANSWERS[case]), tf.make_ndarray(ANSWERS[case]))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_tensor_that_does_not_hold_its_shape_fails_as_in_tensorflow(case):
    with pytest.raises(Exception) as theirs:
        tf.make_ndarray(BROKEN[case])
    with pytest.raises(Exception) as ours:
        ndarray(BROKEN[case])
    assert type(ours.value) is type(theirs.value)
