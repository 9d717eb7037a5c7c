"""Request tensors in every form a client may send them read as TensorFlow reads them: the typed
fields with one value per element (what most clients send), one value for many elements, fewer
values than elements, tensor_content, scalars, empty tensors, and broken ones.

Referee: TensorFlow's own parser of a TensorProto (tf.make_ndarray, tensor_util.py MakeNdarray,
which follows Tensor::FromProto's rules for repeating and padding values), run on the same proto;
and the echo model of TF Serving's json_tensor_test.cc signatures, which answers each input as it
arrived in the session, so the test sees what the server fed, not what it meant to feed.
"""
import re

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from serving.contract import predict_request, request_tensor
from serving.model_server import model_config
from serving.model_server.metrics import Metrics
from serving.model_server.repository import ModelRepository
from serving.model_server.server import Core, Loader
from serving.model_server.status import ServingError
from tests import tfs_conformance_models
from tests.tfs_conformance_models import ECHO_SIGNATURES
from tests.helpers import raw_tensor


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    root = tmp_path_factory.mktemp("echo")
    tfs_conformance_models.echo(str(root / "echo" / "1"))
    loader = Loader(batching_options=None, warmup=False)
    repository = ModelRepository(model_config.single_model_config("echo", str(root / "echo")),
                                 loader.load, loader.unload, max_num_load_retries=0)
    repository.refresh()
    yield Core(repository, Metrics())
    repository.stop()


CASES = {
    # signature: (input name, proto)
    "float exact [2,3]": ("float", raw_tensor(types_pb2.DT_FLOAT, [2, 3], "float_val", [0.5, 1, 2, 3, 4, 5.25])),
    "float one value for [3]": ("float", raw_tensor(types_pb2.DT_FLOAT, [3], "float_val", [1.5])),
    "float two values for [4]": ("float", raw_tensor(types_pb2.DT_FLOAT, [4], "float_val", [1.5, 2.5])),
    "float scalar": ("float", raw_tensor(types_pb2.DT_FLOAT, [], "float_val", [7.0])),
    "float tensor_content": ("float", tf.make_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3))),
    "float no values for [2]": ("float", raw_tensor(types_pb2.DT_FLOAT, [2])),
    "float empty [0,3]": ("float", raw_tensor(types_pb2.DT_FLOAT, [0, 3])),
    "double exact": ("double", raw_tensor(types_pb2.DT_DOUBLE, [2], "double_val", [1e300, -2.5])),
    "int32 exact": ("int32", raw_tensor(types_pb2.DT_INT32, [1, 3], "int_val", [-(2 ** 31), 0, 2 ** 31 - 1])),
    "int64 exact": ("int64", raw_tensor(types_pb2.DT_INT64, [2], "int64_val", [2 ** 40, -3])),
    "int64 one value for [2,2]": ("int64", raw_tensor(types_pb2.DT_INT64, [2, 2], "int64_val", [9])),
    "bool exact": ("bool", raw_tensor(types_pb2.DT_BOOL, [3], "bool_val", [True, False, True])),
    "int8 in int_val": ("int8", raw_tensor(types_pb2.DT_INT8, [2], "int_val", [-5, 7])),
    "string exact [2,1]": ("string", raw_tensor(types_pb2.DT_STRING, [2, 1], "string_val", [b"a\x00b", b"\xff\xfe"])),
    "string one value for [3]": ("string", raw_tensor(types_pb2.DT_STRING, [3], "string_val", [b"x"])),
    "string scalar": ("string", raw_tensor(types_pb2.DT_STRING, [], "string_val", [b"only"])),
}
BROKEN = {
    "float too many values": ("float", raw_tensor(types_pb2.DT_FLOAT, [2], "float_val", [1, 2, 3])),
    "float tensor_content too short": ("float", raw_tensor(types_pb2.DT_FLOAT, [3], content=b"\x00" * 8)),
    "int32 negative dimension": ("int32", raw_tensor(types_pb2.DT_INT32, [-1], "int_val", [1, 2])),
}


def _predict(core, name, proto):
    request = predict_request("echo", f"echo_{name}", {"default": proto})
    return core.predict(request)


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_form_of_a_request_tensor_reaches_the_session_as_tensorflow_parses_it(core, case):
    name, proto = CASES[case]
    expected = tf.make_ndarray(proto)
    answer = tf.make_ndarray(_predict(core, name, proto).outputs["default"])
    assert answer.dtype == expected.dtype and answer.shape == expected.shape
    assert answer.tolist() == expected.tolist()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_tensor_that_does_not_hold_its_shape_is_refused_naming_the_input(core, case):
    name, proto = BROKEN[case]
    with pytest.raises(Exception):
        tf.make_ndarray(proto)  # the referee refuses it too
    with pytest.raises(ServingError) as raised:
        _predict(core, name, proto)
    assert (raised.value.code, raised.value.message) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                         "tensor parsing error: default")


DTYPE_SIGNATURES = ["int32", "float", "double", "string", "int64", "bool", "int8", "uint8", "int16", "uint32",
                    "uint64", "half"]
SENT = {"float32": np.array([1.5], np.float32), "float64": np.array([1.5]), "float16": np.array([1.5], np.float16),
        "int8": np.array([1], np.int8), "int16": np.array([1], np.int16), "int32": np.array([1], np.int32),
        "int64": np.array([1], np.int64), "uint8": np.array([1], np.uint8), "uint16": np.array([1], np.uint16),
        "uint32": np.array([1], np.uint32), "uint64": np.array([1], np.uint64), "bool": np.array([True]),
        "string": np.array(["x"], dtype=object), "complex64": np.array([1j], np.complex64)}


def _call_frame_message(dtypes, values) -> str:
    """TensorFlow's own message for a function called with arguments of the wrong dtype
    (FunctionCallFrame::SetArgs, through the PartitionedCall kernel), or "" if it runs."""
    function = tf.function(lambda *args: args, input_signature=[tf.TensorSpec(None, d) for d in dtypes])
    concrete = function.get_concrete_function()
    try:
        tf.raw_ops.PartitionedCall(args=[tf.constant(v) for v in values], Tout=list(dtypes), f=concrete)
    except tf.errors.InvalidArgumentError as e:
        return re.search(r"Expects arg\[\d+\] to be \w+ but \w+ is provided", e.message).group(0)
    return ""


@pytest.mark.parametrize("signature", DTYPE_SIGNATURES)
def test_an_input_of_the_wrong_dtype_gets_tensorflows_call_frame_message(core, signature):
    """Every dtype a client may send to an input of each dtype: refused with the message
    TensorFlow's call frame gives for the same function and value (referee: a tf.function with
    the signature's input, called through PartitionedCall), or answered when TensorFlow runs it."""
    wanted = ECHO_SIGNATURES[signature]["default"]
    for sent, value in SENT.items():
        message = _call_frame_message([wanted], [value])
        if message:
            with pytest.raises(ServingError) as raised:
                _predict(core, signature, request_tensor(value))
            assert (raised.value.code, raised.value.message) == (grpc.StatusCode.INVALID_ARGUMENT, message), sent
        else:
            assert _predict(core, signature, request_tensor(value)).outputs["default"].dtype == wanted, sent


def test_the_wrong_dtype_among_several_inputs_is_named_by_its_place_in_name_order(core):
    """arg[i] counts the inputs in name order, as the signature's function takes them."""
    spec = ECHO_SIGNATURES["five"]
    good = {"int_tensor": np.array([1], np.int32), "str_tensor": np.array(["a"], dtype=object),
            "float_tensor": np.array([1.5], np.float32), "double_scalar_tensor": np.array(2.5),
            "str_tensor_bytes": np.array([b"b"], dtype=object)}
    for alias in sorted(spec):
        sent = dict(good, **{alias: np.array([True])})
        message = _call_frame_message([spec[a] for a in sorted(spec)], [sent[a] for a in sorted(spec)])
        with pytest.raises(ServingError) as raised:
            core.predict(predict_request("echo", "echo_five", sent))
        assert raised.value.message == message and message.startswith(f"Expects arg[{sorted(spec).index(alias)}]")
