"""Tensors to and from JSON as TF Serving 2.16.1's util/json_tensor.cc converts them.

Requests: `fill_predict_request` (FillPredictRequestFromJson: row "instances" or columnar
"inputs", values checked against the signature's dtypes with AddValueToTensor's rules, shapes
taken from the first element at each level), `fill_example_request` (Classify/Regress
"examples"). Responses: `tensors_to_json` (MakeRowFormatJsonFromTensors /
MakeColumnarFormatJsonFromTensors: floats through WriteDecimal, *_bytes outputs as {"b64": ...}),
`regression_json`, `classification_json`, `status_json`. Every message is the source's, and
every JSON value quoted in one is written as JsonValueToString writes it (serving/model_server/rapidjson.py).
"""
import base64
from typing import Callable, Dict, Mapping, Optional, Tuple

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2

from serving.model_server import rapidjson
from serving.model_server.rapidjson import Object, value_text
from serving.model_server.status import ServingError, invalid_argument

ROW, COLUMNAR = "row", "columnar"
MAX_RANK = 254  # TensorShape::MaxDimensions(): Tensor::FromProto refuses more

_NUMPY = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64, types_pb2.DT_INT32: np.int32,
          types_pb2.DT_INT16: np.int16, types_pb2.DT_INT8: np.int8, types_pb2.DT_UINT8: np.uint8,
          types_pb2.DT_STRING: object, types_pb2.DT_INT64: np.int64, types_pb2.DT_BOOL: np.bool_,
          types_pb2.DT_UINT32: np.uint32, types_pb2.DT_UINT64: np.uint64}
# AddValueToTensor: which JSON numbers each dtype takes (int_val holds int32 for the small types).
_ACCEPTS = {types_pb2.DT_FLOAT: rapidjson.is_number, types_pb2.DT_DOUBLE: rapidjson.is_number,
            types_pb2.DT_INT32: rapidjson.is_int, types_pb2.DT_INT16: rapidjson.is_int,
            types_pb2.DT_INT8: rapidjson.is_int, types_pb2.DT_UINT8: rapidjson.is_int,
            types_pb2.DT_STRING: lambda v: isinstance(v, bytes), types_pb2.DT_INT64: rapidjson.is_int64,
            types_pb2.DT_BOOL: lambda v: v is True or v is False, types_pb2.DT_UINT32: rapidjson.is_uint,
            types_pb2.DT_UINT64: rapidjson.is_uint64}
_BASE64 = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_SPACE = b" \t\n\v\f\r"  # absl::ascii_isspace


def dtype_name(dtype: int) -> str:
    """TF's DataTypeString: DT_FLOAT -> "float", DT_COMPLEX64 -> "complex64"."""
    return types_pb2.DataType.Name(dtype)[3:].lower()


def parse_json(body: bytes):
    """json_tensor.cc ParseJson: an empty body, a RapidJSON error, or a document that is not an object."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = rapidjson.parse(body)
    except rapidjson.ParseError as e:
        raise invalid_argument(f"JSON Parse error: {e}") from e
    if not isinstance(document, Object):
        raise format_error(document, "Is not object")
    return document


def format_error(value, *what: str) -> ServingError:
    return invalid_argument(f"JSON Value: {value_text(value)} " + "".join(what))


def _type_error(value, dtype: int) -> ServingError:
    return invalid_argument(f"JSON Value: {value_text(value)} Type: {rapidjson.type_name(value)} "
                            f"is not of expected type: {dtype_name(dtype)}")


def is_base64_object(value) -> bool:
    """IsValBase64Object: an object with one member, "b64", holding a string."""
    return isinstance(value, Object) and len(value) == 1 and isinstance(value.get(b"b64"), bytes)


def base64_unescape(text: bytes) -> Optional[bytes]:
    """absl::Base64Unescape: whitespace anywhere is skipped; padding ('=' or '.') is optional but,
    if present, exactly what the length needs; None where it refuses."""
    values, position = [], 0
    while position < len(text):
        char = text[position]
        if char in b"=.":
            break
        if char in _BASE64:
            values.append(char)
        elif char not in _SPACE:
            return None
        position += 1
    state = len(values) % 4
    if state == 1:
        return None
    equals = 0
    for char in text[position:]:
        if char in b"=.":
            equals += 1
        elif char not in _SPACE:
            return None
    if equals not in (0, {0: 0, 2: 2, 3: 1}[state]):
        return None
    return base64.b64decode(bytes(values) + b"=" * (-len(values) % 4))


def decode_base64_object(value) -> bytes:
    """JsonDecodeBase64Object."""
    if not is_base64_object(value):
        raise invalid_argument(f"JSON Value: {value_text(value)} not formatted correctly for base64 data")
    decoded = base64_unescape(value.get(b"b64"))
    if decoded is None:
        raise invalid_argument("Unable to base64 decode")
    return decoded


def _shape(value) -> list:
    """GetDenseTensorShape: the sizes along the first element of each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, dtype: int, shape: list) -> list:
    """FillTensorProto, iteratively: the leaf values in order, or the first error it meets."""
    rank = len(shape)
    accepts = _ACCEPTS.get(dtype)
    leaves = []
    todo = [(value, 0)]
    while todo:
        item, level = todo.pop()
        if not isinstance(item, list):
            if level != rank:
                raise invalid_argument(f"JSON Value: {value_text(item)} found at incorrect level: {level + 1} "
                                       f"in the JSON DOM. Expected at level: {rank}")
            if isinstance(item, Object):
                if dtype != types_pb2.DT_STRING:
                    raise _type_error(item, dtype)
                leaves.append(decode_base64_object(item))
            elif accepts is None:
                raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"Conversion of JSON Value: {value_text(item)} "
                                                                  f"to type: {dtype_name(dtype)}")
            elif not accepts(item):
                raise _type_error(item, dtype)
            else:
                leaves.append(item)
            continue
        if level >= rank:
            raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(item) != shape[level]:
            raise invalid_argument(f"Encountered list at unexpected size: {len(item)} at level: {level} "
                                   f"expected size: {shape[level]}")
        todo.extend((element, level + 1) for element in reversed(item))
    return leaves


def _array(leaves: list, dtype: int, shape: list, name: str) -> np.ndarray:
    """The tensor the TensorProto becomes (Tensor::FromProto: int_val narrowed to the dtype,
    float_val as float32; a shape TF cannot hold is "tensor parsing error")."""
    if len(shape) > MAX_RANK:
        raise invalid_argument(f"tensor parsing error: {name}")
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(leaves) > size:  # FromProtoField: surplus values (a duplicated key) are ignored...
        leaves = leaves[:size]
    elif leaves and len(leaves) < size:  # ...and missing ones repeat the last
        leaves = leaves + [leaves[-1]] * (size - len(leaves))
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
    elif dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        array = np.array([float(v) for v in leaves], dtype=_NUMPY[dtype])
    elif dtype in (types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8):
        array = np.array(leaves, dtype=np.int32).astype(_NUMPY[dtype])
    else:
        array = np.array(leaves, dtype=_NUMPY[dtype])
    return array.reshape(shape)


def _item(value, dtype: int) -> Tuple[list, list]:
    """(shape, leaves) of one JSON value as a tensor of `dtype`."""
    shape = _shape(value)
    return shape, _fill(value, dtype, shape)


def fill_predict_request(body: bytes, tensor_infos: Callable[[str], Mapping[str, object]]
                         ) -> Tuple[str, Dict[str, np.ndarray], str]:
    """FillPredictRequestFromJson: (signature name, inputs, ROW or COLUMNAR). `tensor_infos(name)`
    returns the signature's inputs (GetInfoMap: it raises for an unknown model or signature)."""
    document = parse_json(body)
    signature_name = _signature_name(document)
    infos = tensor_infos(signature_name)
    if not infos:
        raise invalid_argument(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    dtypes = {name: info.dtype for name, info in infos.items()}
    instances, inputs = document.get(b"instances"), document.get(b"inputs")
    if b"instances" in document:
        if b"inputs" in document:
            raise format_error(document, "Not formatted correctly expecting only one of 'inputs' or 'instances' "
                                         "keys to exist ")
        if not isinstance(instances, list):
            raise format_error(document, "Expecting 'instances' to be an list/array")
        if not instances:
            raise format_error(document, "No values in 'instances' array")
        return signature_name, _from_instances(instances, dtypes), ROW
    if b"inputs" in document:
        return signature_name, _from_inputs(inputs, dtypes), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _signature_name(document: Object) -> str:
    """FillSignature: an optional string."""
    if b"signature_name" not in document:
        return ""
    name = document.get(b"signature_name")
    if not isinstance(name, bytes):
        raise invalid_argument(f"JSON Value: {value_text(document)} not formatted correctly. "
                               "'signature_name' key must be a string value.")
    return name.decode("utf-8", "surrogateescape")


def _status_text(error: ServingError) -> str:
    """Status::ToString: "<CODE NAME>: <message>"."""
    return f"{error.code_name}: {error.message}"


def _from_instances(instances: list, dtypes: Dict[str, int]) -> Dict[str, np.ndarray]:
    """FillTensorMapFromInstancesList."""
    if not isinstance(instances[0], Object) and len(dtypes) > 1:
        raise invalid_argument("instances is a plain list, but expecting list of objects as multiple input "
                               "tensors required as per tensorinfo_map")
    element_is_object = lambda value: isinstance(value, Object) and not is_base64_object(value)
    objects = element_is_object(instances[0])
    names = sorted(dtypes)
    leaves: Dict[str, list] = {}
    shapes: Dict[str, list] = {}
    sizes: Dict[str, int] = {}

    def add(item, name: str) -> None:  # AddInstanceItem
        if name not in dtypes:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        shape, values = _item(item, dtypes[name])
        if name not in sizes:
            sizes[name], shapes[name], leaves[name] = len(values), shape, []
        elif sizes[name] != len(values):
            raise invalid_argument(f"Expecting tensor size: {sizes[name]} but got: {len(values)}")
        elif shapes[name] != shape:
            raise invalid_argument(f"Expecting shape [{','.join(map(str, shapes[name]))}] but got: "
                                   f"[{','.join(map(str, shape))}]")
        leaves[name].extend(values)

    for index, element in enumerate(instances):
        if objects:
            if not element_is_object(element):
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            keys = set()
            for key, item in element:
                name = key.decode("utf-8", "surrogateescape")
                keys.add(name)
                try:
                    add(item, name)
                except ServingError as e:
                    raise invalid_argument(f"Failed to process element: {index} key: {name} of 'instances' list. "
                                           f"Error: {_status_text(e)}") from e
            if keys != set(dtypes):
                raise invalid_argument(f"Failed to process element: {index} of 'instances' list. JSON object: "
                                       f"{value_text(element)} keys must be equal to: {','.join(names)}")
        else:
            if element_is_object(element):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(element, names[0])
            except ServingError as e:
                raise invalid_argument(f"Failed to process element: {index} of 'instances' list. "
                                       f"Error: {_status_text(e)}") from e
    return {name: _array(leaves[name], dtypes[name], [len(instances), *shapes[name]], name) for name in leaves}


def _from_inputs(value, dtypes: Dict[str, int]) -> Dict[str, np.ndarray]:
    """FillTensorMapFromInputsMap."""
    if not isinstance(value, Object) or is_base64_object(value):
        if len(dtypes) > 1:
            raise invalid_argument("inputs is a plain value/list, but expecting an object as multiple input "
                                   "tensors required as per tensorinfo_map")
        (name, dtype), = dtypes.items()
        shape, values = _item(value, dtype)
        return {name: _array(values, dtype, shape, name)}
    tensors = {}
    for name in sorted(dtypes):
        if name.encode() not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        shape, values = _item(value.get(name.encode()), dtypes[name])
        tensors[name] = _array(values, dtypes[name], shape, name)
    return tensors


# --- Classify / Regress requests ---------------------------------------------------------------------

def _feature_error(name: str, kind: str) -> ServingError:
    return invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _add_to_feature(value, name: str, feature: dict) -> None:
    """AddValueToFeature: feature = {"kind": None|bytes|float|int64, "values": [...]}."""
    def kind(wanted: str):
        if feature["kind"] not in (None, wanted):
            raise _feature_error(name, feature["kind"])
        feature["kind"] = wanted

    if value is None or isinstance(value, list) or (isinstance(value, Object) and not is_base64_object(value)):
        raise invalid_argument(f"Feature: {name} has element with unexpected JSON type: {rapidjson.type_name(value)}")
    if value is True or value is False:
        kind("int64")
        feature["values"].append(1 if value else 0)
    elif isinstance(value, Object):
        kind("bytes")
        feature["values"].append(decode_base64_object(value))
    elif isinstance(value, bytes):
        kind("bytes")
        feature["values"].append(value)
    elif type(value) is float:
        kind("float")
        feature["values"].append(float(np.float32(value)))
    else:
        kind("int64")
        if not rapidjson.is_int64(value) and rapidjson.is_uint64(value):
            raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature["values"].append(value)


def _example(value):
    """MakeExampleFromJsonObject."""
    import tensorflow as tf
    if not isinstance(value, Object):
        raise invalid_argument(f"Example must be JSON object but got JSON {rapidjson.type_name(value)}")
    features = {}
    for key, content in value:
        name = key.decode("utf-8", "surrogateescape")
        feature = {"kind": None, "values": []}
        for item in (content if isinstance(content, list) else [content]):
            _add_to_feature(item, name, feature)
        if feature["kind"] == "bytes":
            features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=feature["values"]))
        elif feature["kind"] == "float":
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=feature["values"]))
        elif feature["kind"] == "int64":
            features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=feature["values"]))
        else:
            features[name] = tf.train.Feature()
    return tf.train.Example(features=tf.train.Features(feature=features))


def fill_example_request(body: bytes, request) -> None:
    """FillClassifyRegressRequestFromJson (the "context" goes into example_list_with_context)."""
    document = parse_json(body)
    request.model_spec.signature_name = _signature_name(document)
    has_context = b"context" in document
    if has_context:
        request.input.example_list_with_context.context.CopyFrom(_example(document.get(b"context")))
    if b"examples" not in document:
        raise format_error(document, "When method is classify, key 'examples' is expected and was not found")
    examples = document.get(b"examples")
    if not isinstance(examples, list):
        raise format_error(document, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise format_error(document, "'examples' value is an empty array")
    target = (request.input.example_list_with_context.examples if has_context
              else request.input.example_list.examples)
    for example in examples:
        target.add().CopyFrom(_example(example))


# --- responses -----------------------------------------------------------------------------------------

def _write_value(writer: rapidjson.PrettyWriter, value, dtype, as_bytes: bool) -> None:
    """AddSingleValueAndAdvance."""
    if dtype == np.float32:
        writer.raw(rapidjson.write_decimal(float(value), float32=True))
    elif dtype == np.float64:
        writer.raw(rapidjson.write_decimal(float(value), float32=False))
    elif dtype == np.bool_:
        writer.raw(b"true" if value else b"false")
    elif dtype == object:
        if as_bytes:
            writer.start_object()
            writer.key(b"b64")
            writer.string(base64.b64encode(value))
            writer.end_object()
        else:
            writer.string(value)
    else:
        writer.raw(str(int(value)).encode())


_WRITABLE = (np.float32, np.float64, np.int32, np.int16, np.int8, np.uint8, np.int64, np.bool_, np.uint32,
             np.uint64, object)


def _write_tensor(writer: rapidjson.PrettyWriter, array: np.ndarray, name: str, first_dim: int) -> None:
    """AddTensorValues from dimension `first_dim` (1 for a row of a row-format answer)."""
    as_bytes = array.dtype == object and name.endswith("_bytes")
    dtype = array.dtype.type if array.dtype != object else object
    if dtype not in _WRITABLE:
        raise invalid_argument(f"Failed to write JSON value for tensor type: {_dtype_string(array.dtype)}")
    shape = array.shape[first_dim:]
    flat = array.reshape(-1)
    if not shape:
        _write_value(writer, flat[0], dtype, as_bytes)
        return
    # Walk the nested lists iteratively: ("open", depth) / ("close",) / ("leaf", index).
    index = 0
    todo = [("open", 0)]
    while todo:
        step = todo.pop()
        if step[0] == "close":
            writer.end_array()
        elif step[0] == "leaf":
            _write_value(writer, flat[index], dtype, as_bytes)
            index += 1
        else:
            depth = step[1]
            writer.start_array()
            todo.append(("close",))
            if depth == len(shape) - 1:
                todo.extend([("leaf",)] * shape[depth])
            else:
                todo.extend([("open", depth + 1)] * shape[depth])


def _dtype_string(dtype) -> str:
    import tensorflow as tf
    return dtype_name(tf.as_dtype(dtype).as_datatype_enum)


def tensors_to_json(outputs: Mapping[str, np.ndarray], output_format: str) -> bytes:
    """MakeJsonFromTensors. Outputs are written in name order (TF Serving's proto map order is
    unspecified)."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    objects = len(names) > 1
    writer = rapidjson.PrettyWriter()
    writer.start_object()
    if output_format == COLUMNAR:
        writer.key(b"outputs")
        if objects:
            writer.start_object()
        for name in names:
            if objects:
                writer.key(name.encode())
            _write_tensor(writer, outputs[name], name, 0)
        if objects:
            writer.end_object()
        writer.end_object()
        return writer.text()
    batch = -1
    for name in names:
        if outputs[name].ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        size = outputs[name].shape[0]
        if batch >= 0 and batch != size:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: {size} expecting: {batch}")
        batch = size
    writer.key(b"predictions")
    writer.start_array()
    for row in range(batch):
        if objects:
            writer.start_object()
        writer.single_line = True
        for name in names:
            if objects:
                writer.key(name.encode())
            _write_tensor(writer, outputs[name][row:row + 1], name, 1)
        writer.single_line = False
        if objects:
            writer.end_object()
    writer.end_array()
    writer.end_object()
    return writer.text()


def regression_json(values) -> bytes:
    """MakeJsonFromRegressionResult."""
    if not len(values):
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    writer = rapidjson.PrettyWriter()
    writer.start_object()
    writer.key(b"results")
    writer.single_line = True
    writer.start_array()
    for value in values:
        writer.raw(rapidjson.write_decimal(float(value), float32=True))
    writer.end_array()
    writer.end_object()
    return writer.text()


def classification_json(rows) -> bytes:
    """MakeJsonFromClassificationResult: rows of (label bytes, score) pairs."""
    if not len(rows):
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    writer = rapidjson.PrettyWriter()
    writer.start_object()
    writer.key(b"results")
    writer.start_array()
    for row in rows:
        writer.single_line = True
        writer.start_array()
        for label, score in row:
            writer.start_array()
            writer.string(label)
            writer.raw(rapidjson.write_decimal(float(score), float32=True))
            writer.end_array()
        writer.end_array()
        writer.single_line = False
    writer.end_array()
    writer.end_object()
    return writer.text()


def status_json(message: str) -> bytes:
    """MakeJsonFromStatus: {"error": message}."""
    writer = rapidjson.PrettyWriter()
    writer.start_object()
    writer.key(b"error")
    writer.string(message.encode("utf-8", "surrogateescape"))
    writer.end_object()
    return writer.text()
