"""TF Serving's REST API (--rest_api_port) on the same Core as the gRPC API.

Paths, JSON formats, error bodies and HTTP codes follow model_servers/http_rest_api_util.cc
(path regexes), http_rest_api_handler.cc (dispatch; a Predict signature is looked up with
INVALID_ARGUMENT 'Serving signature name: "x" not found in signature def'), util/json_tensor.cc
(row "instances" / columnar "inputs", {"b64": ...} strings, "predictions" / "outputs", outputs
named *_bytes sent as {"b64": ...}, Regress/Classify "examples" -> "results") and
http_server.cc (status -> HTTP code, {"error": message}, Prometheus page at the MonitoringConfig
path). Request count and latency are recorded with entrypoint "REST".
"""
import base64
import http.server
import json
import re
import threading
import time
import urllib.parse
from typing import Optional

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     predict_pb2, regression_pb2)

from serving.metrics import REQUEST_LATENCY
from serving.server import Core, DEFAULT_SIGNATURE, from_tf_error
from serving.status import ServingError, invalid_argument

PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.I)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.I)
API_PATH = re.compile(r"/v1/.*", re.I)


def _json_error(value, what: str) -> ServingError:
    return invalid_argument(f"JSON Value: {json.dumps(value)} {what}")


def _leaf(value, dtype: tf.DType):
    """One JSON scalar as a value of the signature input's dtype (json_tensor.cc AddValueToTensor)."""
    if dtype == tf.string:
        if isinstance(value, dict):
            if set(value) != {"b64"} or not isinstance(value["b64"], str):
                raise _json_error(value, "is not a base64 object: expecting {\"b64\": <string>}")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError as e:
                raise invalid_argument("Unable to base64 decode") from e
        if isinstance(value, str):
            return value.encode("utf-8")
    elif dtype == tf.bool and isinstance(value, bool):
        return value
    elif dtype.is_integer and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif dtype.is_floating and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise _json_error(value, f"Type: {type(value).__name__} is not of expected type: {dtype.name}")


def _tensor(value, dtype: tf.DType) -> np.ndarray:
    """A dense tensor from nested JSON lists; its shape follows the first element at each level
    and every list must match it (json_tensor.cc GetDenseTensorShape / FillTensorProto)."""
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None

    def fill(item, level):
        if not isinstance(item, list):
            if level != len(shape):
                raise _json_error(item, f"found at incorrect level: {level + 1} in the JSON DOM. "
                                        f"Expected at level: {len(shape)}")
            return _leaf(item, dtype)
        if level >= len(shape):
            raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
        if len(item) != shape[level]:
            raise invalid_argument(f"Encountered list at unexpected size: {len(item)} at level: {level} "
                                   f"expected size: {shape[level]}")
        return [fill(v, level + 1) for v in item]

    values = fill(value, 0)
    return np.array(values, dtype=object if dtype == tf.string else dtype.as_numpy_dtype).reshape(shape)


def _is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def predict_inputs(body: dict, infos) -> dict:
    """json_tensor.cc FillPredictRequestFromJson: {"instances": [...]} or {"inputs": ...}."""
    dtypes = {name: tf.dtypes.as_dtype(info.dtype) for name, info in infos.items()}
    if "instances" in body and "inputs" in body:
        raise _json_error(body, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise _json_error(body, "Expecting 'instances' to be an list/array")
        if not rows:
            raise _json_error(body, "No values in 'instances' array")
        objects = isinstance(rows[0], dict) and not _is_b64(rows[0])
        if not objects and len(dtypes) > 1:
            raise invalid_argument("instances is a plain list, but expecting list of objects as multiple input "
                                   "tensors required as per tensorinfo_map")
        columns = {name: [] for name in dtypes}
        for i, row in enumerate(rows):
            if objects:
                if not isinstance(row, dict) or _is_b64(row):
                    raise invalid_argument(f"Expecting object but got list at item {i} of input list")
                for name in row:
                    if name not in dtypes:
                        raise invalid_argument(f"Failed to process element: {i} key: {name} of 'instances' list. "
                                               f"Error: JSON object: does not have named input: {name}")
                if set(row) != set(dtypes):
                    raise invalid_argument(f"Failed to process element: {i} of 'instances' list. JSON object: "
                                           f"{json.dumps(row)} keys must be equal to: {','.join(sorted(dtypes))}")
                items = row
            else:
                if isinstance(row, dict) and not _is_b64(row):
                    raise invalid_argument(f"Expecting value/list but got object at item {i} of input list")
                items = {next(iter(dtypes)): row}
            for name, item in items.items():
                tensor = _tensor(item, dtypes[name])
                if columns[name] and tensor.shape != columns[name][0].shape:
                    raise invalid_argument(f"Failed to process element: {i} of 'instances' list. Error: Expecting "
                                           f"shape {list(columns[name][0].shape)} but got: {list(tensor.shape)}")
                columns[name].append(tensor)
        return {name: np.stack(values) for name, values in columns.items()}
    if "inputs" in body:
        value = body["inputs"]
        if not isinstance(value, dict) or _is_b64(value):
            if len(dtypes) > 1:
                raise invalid_argument("inputs is a plain value/list, but expecting an object as multiple input "
                                       "tensors required as per tensorinfo_map")
            name = next(iter(dtypes))
            return {name: _tensor(value, dtypes[name])}
        for name in dtypes:
            if name not in value:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        return {name: _tensor(value[name], dtypes[name]) for name in dtypes}
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _json_value(value, as_bytes: bool):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()} if as_bytes else value.decode("utf-8", "replace")
    return value.item() if isinstance(value, np.generic) else value


def _json_tensor(array, as_bytes: bool):
    if not isinstance(array, np.ndarray):  # an element of an object (string) array
        return _json_value(array, as_bytes)
    if array.ndim == 0:
        return _json_value(array.item() if array.dtype != object else array[()], as_bytes)
    return [_json_tensor(row, as_bytes) for row in array]


def predict_outputs(outputs: dict, row_format: bool) -> dict:
    """json_tensor.cc MakeRowFormatJsonFromTensors / MakeColumnarFormatJsonFromTensors."""
    as_bytes = {name: name.endswith("_bytes") and array.dtype == object for name, array in outputs.items()}
    if not row_format:
        if len(outputs) == 1:
            ((name, array),) = outputs.items()
            return {"outputs": _json_tensor(array, as_bytes[name])}
        return {"outputs": {name: _json_tensor(array, as_bytes[name]) for name, array in sorted(outputs.items())}}
    batch = None
    for name, array in sorted(outputs.items()):
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                                   f"expecting: {batch}")
        batch = array.shape[0]
    if len(outputs) == 1:
        ((name, array),) = outputs.items()
        return {"predictions": [_json_tensor(row, as_bytes[name]) for row in array]}
    return {"predictions": [{name: _json_tensor(array[i], as_bytes[name]) for name, array in sorted(outputs.items())}
                            for i in range(batch)]}


def _feature(name: str, values) -> tf.train.Feature:
    """json_tensor.cc AddValueToFeature: strings/b64 -> bytes, integers/bools -> int64, decimals -> float."""
    values = values if isinstance(values, list) else [values]
    kinds = set()
    converted = []
    for value in values:
        if isinstance(value, str) or _is_b64(value):
            kinds.add("bytes")
            converted.append(_leaf(value, tf.string))
        elif isinstance(value, bool) or isinstance(value, int):
            kinds.add("int64")
            converted.append(int(value))
        elif isinstance(value, float):
            kinds.add("float")
            converted.append(value)
        else:
            raise invalid_argument(f"Feature: {name} has element with unexpected JSON type: {type(value).__name__}")
    if len(kinds) > 1:
        raise invalid_argument(f"Unexpected element type in feature: {name} expecting type: {sorted(kinds)[0]}")
    kind = kinds.pop() if kinds else "bytes"
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=converted))
    if kind == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=converted))
    return tf.train.Feature(float_list=tf.train.FloatList(value=converted))


def fill_example_request(body: dict, request) -> None:
    """json_tensor.cc FillClassifyRegressRequestFromJson."""
    if "signature_name" in body:
        if not isinstance(body["signature_name"], str):
            raise invalid_argument("'signature_name' key must be a string value.")
        request.model_spec.signature_name = body["signature_name"]
    if "context" in body:
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                           "example_list_with_context is not supported by movierec serve")
    examples = body.get("examples")
    if examples is None:
        raise _json_error(body, "When method is classify, key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise _json_error(body, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _json_error(body, "'examples' value is an empty array")
    for example in examples:
        if not isinstance(example, dict):
            raise invalid_argument(f"Example must be JSON object but got JSON {type(example).__name__}")
        request.input.example_list.examples.add().CopyFrom(tf.train.Example(features=tf.train.Features(
            feature={name: _feature(name, values) for name, values in example.items()})))


class RestApi:
    """Answers one REST request: (HTTP status, content type, body)."""

    def __init__(self, core: Core, monitoring_path: Optional[str]):
        self.core, self.monitoring_path = core, monitoring_path

    def handle(self, method: str, path: str, body: bytes):
        path = urllib.parse.urlsplit(path).path
        if self.monitoring_path and path == self.monitoring_path:
            return 200, "text/plain", self.core.metrics.page().encode()
        if not API_PATH.fullmatch(path):
            return 404, "text/html", b"<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD></HTML>"
        started, model_name, api = time.perf_counter(), "", ""
        try:
            match = (PREDICTION_PATH if method == "POST" else STATUS_PATH).fullmatch(path) \
                if method in ("POST", "GET") else None
            if match is None:
                raise invalid_argument(f"Malformed request: {method} {path}")
            model_name = urllib.parse.unquote(match.group(1) or "")
            version, label = match.group(2), urllib.parse.unquote(match.group(3) or "")
            api = match.group(4) if method == "POST" else ""
            answer = self._answer(method, model_name, version, label, api.lower() if api else match.group(4), body)
            status, text = 200, json.dumps(answer, indent=1)
        except Exception as e:
            error = from_tf_error(e)
            self.core.metrics.count_request(model_name, error.code_name)
            return error.http_status, "application/json", json.dumps({"error": error.message}).encode()
        self.core.metrics.count_request(model_name, "OK")
        self.core.metrics.observe(REQUEST_LATENCY, (model_name, api, "REST"), (time.perf_counter() - started) * 1e6)
        return status, "application/json", text.encode()

    def _answer(self, method, model_name, version, label, action, body: bytes):
        if version and label:
            raise invalid_argument(f"Both model version ({version}) and model version label ({label}) "
                                   "cannot be supplied.")

        def spec(model_spec):
            model_spec.name = model_name
            if version:
                model_spec.version.value = int(version)
            if label:
                model_spec.version_label = label

        if method == "GET":
            if not model_name:
                raise invalid_argument("Missing model name in request.")
            if action and action.lower() == "metadata":
                request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
                spec(request.model_spec)
                response = self.core.metadata(request)
                signatures = get_model_metadata_pb2.SignatureDefMap()
                response.metadata["signature_def"].Unpack(signatures)
                as_dict = lambda message: json_format.MessageToDict(
                    message, including_default_value_fields=True, preserving_proto_field_name=True)
                return {"model_spec": as_dict(response.model_spec), "metadata": {"signature_def": as_dict(signatures)}}
            request = get_model_status_pb2.GetModelStatusRequest()
            spec(request.model_spec)
            return json_format.MessageToDict(self.core.status(request), including_default_value_fields=True)
        try:
            document = json.loads(body or b"")
        except ValueError as e:
            raise invalid_argument(f"JSON Parse error: {e}") from e
        if not isinstance(document, dict):
            raise _json_error(document, "Is not object")
        if action == "predict":
            return self._predict(document, spec)
        request = regression_pb2.RegressionRequest() if action == "regress" else \
            classification_pb2.ClassificationRequest()
        spec(request.model_spec)
        fill_example_request(document, request)
        if action == "regress":
            return {"results": [r.value for r in self.core.regress(request).result.regressions]}
        return {"results": [[[c.label, c.score] for c in row.classes]
                            for row in self.core.classify(request).result.classifications]}

    def _predict(self, document: dict, spec) -> dict:
        request = predict_pb2.PredictRequest()
        spec(request.model_spec)
        signature_name = document.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid_argument("'signature_name' key must be a string value.")
        request.model_spec.signature_name = signature_name
        servable = self.core.servable(request.model_spec)
        name = signature_name or DEFAULT_SIGNATURE
        if name not in servable.signature_defs:
            raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
        inputs = predict_inputs(document, servable.signature_defs[name].inputs)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self.core.predict(request)
        outputs = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
        return predict_outputs(outputs, row_format="instances" in document)


def make_rest_server(api: RestApi, host: str, port: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            status, content_type, body = api.handle(self.command, self.path, self.rfile.read(length))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args):  # one line per request would drown the server log
            pass

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rest-api", daemon=True).start()
    return server
