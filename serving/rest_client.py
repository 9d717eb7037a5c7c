"""A client backend over TF Serving's REST API (:8501), interchangeable with client.GrpcBackend.

Inputs go as columnar JSON ({"signature_name": ..., "inputs": {...}}), strings as {"b64": ...} so
any bytes survive; outputs come back as arrays. Used by the REST contract test and the serving
benchmark, so both exercise exactly what a REST user sends.
"""
import base64
import http.client
import json
from typing import Dict

import numpy as np



def _json(value: np.ndarray):
    if value.dtype == object or value.dtype.kind in "SU":
        encode = np.vectorize(lambda v: {"b64": base64.b64encode(v if isinstance(v, bytes) else str(v).encode())
                                         .decode()}, otypes=[object])
        return encode(value).tolist() if value.size else np.empty(value.shape, object).tolist()
    return value.tolist()


class RestError(Exception):
    """A non-200 answer: its HTTP status and TF Serving's {"error": ...} message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class RestBackend:
    """Signatures called through POST /v1/models/<name>:predict on one kept-alive connection."""

    def __init__(self, host: str, port: int, model_name: str, timeout_s: float = 10.0):
        self.model_name = model_name
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        self.last_version = None
        self._output_dtypes: Dict[str, Dict[str, np.dtype]] = {}

    def request(self, method: str, path: str, body=None):
        """(HTTP status, decoded JSON) of one call."""
        self.connection.request(method, path, body=None if body is None else json.dumps(body),
                                headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def call(self, signature: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        status, answer = self.request("POST", f"/v1/models/{self.model_name}:predict", {
            "signature_name": signature, "inputs": {k: _json(np.asarray(v)) for k, v in inputs.items()}})
        if status != 200:
            raise RestError(status, answer.get("error", ""))
        outputs = answer["outputs"]
        if not isinstance(outputs, dict):  # a single-output signature's value comes unnamed
            outputs = {"": outputs}
        dtypes = self.output_dtypes(signature)
        return {key: np.array(value, dtype=object if _is_text(value) else dtypes.get(key))
                for key, value in outputs.items()}

    def output_dtypes(self, signature: str) -> Dict[str, np.dtype]:
        """The signature's output dtypes, from the model's metadata (read once): JSON numbers carry
        no dtype, and TF Serving writes a float32 with just the digits that read back as that
        float32 (json_tensor.cc WriteDecimal), so it is read back as float32, not float64."""
        if signature not in self._output_dtypes:
            status, answer = self.request("GET", f"/v1/models/{self.model_name}/metadata")
            if status != 200:
                raise RestError(status, answer.get("error", ""))
            outputs = answer["metadata"]["signature_def"]["signature_def"].get(signature, {}).get("outputs", {})
            numpy = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32, "DT_INT64": np.int64,
                     "DT_BOOL": np.bool_}
            dtypes = {key: numpy[info["dtype"]] for key, info in outputs.items() if info.get("dtype") in numpy}
            if len(outputs) == 1 and dtypes:  # a single output's value comes unnamed
                dtypes[""] = next(iter(dtypes.values()))
            self._output_dtypes[signature] = dtypes
        return self._output_dtypes[signature]

    def close(self) -> None:
        self.connection.close()


def _is_text(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str)
