"""TF Serving's REST API (--rest_api_port) on the same Core as the gRPC API.

Routing follows model_servers/http_server.cc and http_rest_api_handler.cc exactly:
- the Prometheus page answers at the MonitoringConfig path (matched without the query; any other
  request line for it is 400 "Unexpected path: ..."); anything else must match "(?i)/v1/.*"
  against the path *with* its query string, or the HTTP layer (libevent's evhttp) answers 404
  with its HTML page;
- OPTIONS is a CORS preflight (OK with an "Origin: http(s)://..." header, else 400 with an empty
  body); other methods go to ProcessRequest: POST matches the prediction regex, GET the
  status/metadata regex (http_rest_api_util.cc, both case-insensitive), and the captured verb or
  sub-resource is then compared case-sensitively: ":PREDICT" is "Malformed request", "/METADATA"
  is a status request. Model names and labels are percent-decoded (curl_easy_unescape);
- bodies: Content-Length or chunked, gzip-encoded ones uncompressed (evhttp_request.cc); JSON in
  and out as util/json_tensor.cc does it (serving/model_server/json_tensor.py); status and metadata through
  protobuf's JSON printer with one-space indentation (http_rest_api_util.cc ToJsonString);
- errors: {"error": message} with the HTTP code of http_server.cc ToHTTPStatusCode; request
  count for every request reaching the API, latency for successful ones (API label = the verb
  as captured, entrypoint "REST"); Predict/Regress/Classify run with RunOptions.timeout_in_ms =
  --rest_api_timeout_in_ms (DEADLINE_EXCEEDED, 504, when a run takes longer).
"""
import gzip
import http.server
import re
import socketserver
import threading
import time
import urllib.parse
import zlib
from typing import Optional, Tuple

from google.protobuf import descriptor
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     predict_pb2, regression_pb2)

from serving.model_server import json_tensor
from serving.contract import SIGNATURE_DEF
from serving.model_server.metrics import REQUEST_LATENCY
from serving.model_server.server import Core, DEFAULT_SIGNATURE, from_tf_error
from serving.model_server.status import failed_precondition, invalid_argument

# http_rest_api_util.cc kPredictionApiGegex / kModelStatusApiRegex; http_rest_api_util.h kHTTPRestApiHandlerPathRegex.
PREDICTION_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.ASCII)
STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?", re.ASCII)
API_PATH = re.compile(r"(?i)/v1/.*", re.ASCII | re.DOTALL)
INT64_MAX = 2 ** 63 - 1
# What the REST layer reads at most: evhttp sets no limit; we refuse bodies over 2 GiB (as gRPC)
# with 413 instead of running out of memory.
MAX_BODY_BYTES = 2 ** 31 - 1
JSON = "application/json"


def _error_page(code: int, reason: str) -> bytes:
    """libevent http.c evhttp_send_error's page."""
    return (f"<HTML><HEAD>\n<TITLE>{code} {reason}</TITLE>\n</HEAD><BODY>\n<H1>{reason}</H1>\n"
            f"</BODY></HTML>\n").encode()


def _decode_arg(text: str) -> str:
    """http_rest_api_util.cc DecodeArg (curl_easy_unescape): %XX sequences decoded, '+' kept."""
    return urllib.parse.unquote_to_bytes(text).decode("utf-8", "surrogateescape")


# --- protobuf's JSON printer (http_rest_api_util.cc ToJsonString) ----------------------------------

_JSON_ESCAPES = {i: "\\u%04x" % i for i in list(range(0x20)) + list(range(0x7F, 0xA0))}
_JSON_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"',
                      0x5C: "\\\\", 0x3C: "\\u003c", 0x3E: "\\u003e"})
for _cp in [0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0xAD, 0x6DD, 0x70F, 0x17B4, 0x17B5, *range(0x600, 0x604),
            *range(0x200B, 0x2010), *range(0x2028, 0x202F), *range(0x2060, 0x2065), *range(0x206A, 0x2070)]:
    _JSON_ESCAPES[_cp] = "\\u%04x" % _cp


def _json_string(text: str) -> str:
    """protobuf util/internal/json_escaping.cc Escape (the characters it escapes for HTML safety too)."""
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def _scalar_json(field, value) -> str:
    if field.type == descriptor.FieldDescriptor.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return _json_string(enum_value.name) if enum_value else str(value)
    if field.type in (descriptor.FieldDescriptor.TYPE_INT64, descriptor.FieldDescriptor.TYPE_UINT64,
                      descriptor.FieldDescriptor.TYPE_SINT64, descriptor.FieldDescriptor.TYPE_FIXED64,
                      descriptor.FieldDescriptor.TYPE_SFIXED64):
        return f'"{value}"'
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if field.type == descriptor.FieldDescriptor.TYPE_STRING:
        return _json_string(value)
    if field.type == descriptor.FieldDescriptor.TYPE_BYTES:
        import base64
        return '"' + base64.b64encode(value).decode() + '"'
    return str(value)


def _message_json(message, preserve_names: bool, level: int) -> str:
    """One message as protobuf's JSON printer writes it with add_whitespace (one-space
    indentation) and always_print_primitive_fields (its DefaultValueObjectWriter): the fields
    outside oneofs in declaration order (unset primitive, repeated and map fields with their
    defaults, unset messages left out), then the oneof fields that are set; wrapper types as
    their value."""
    if message.DESCRIPTOR.full_name.startswith("google.protobuf.") and message.DESCRIPTOR.name.endswith("Value"):
        return _scalar_json(message.DESCRIPTOR.fields_by_name["value"], message.value)
    fields = [f for f in message.DESCRIPTOR.fields if f.containing_oneof is None
              and (_is_set(message, f) or f.type != descriptor.FieldDescriptor.TYPE_MESSAGE
                   or f.label == descriptor.FieldDescriptor.LABEL_REPEATED)]
    fields += sorted((f for f in message.DESCRIPTOR.fields if f.containing_oneof is not None and _is_set(message, f)),
                     key=lambda f: f.number)
    members = []
    for field in fields:
        name = field.name if preserve_names else field.json_name
        members.append((name, _field_json(message, field, preserve_names, level + 1)))
    if not members:
        return "{}"
    pad = "\n" + " " * (level + 1)
    return "{" + ",".join(f'{pad}"{name}": {value}' for name, value in members) + "\n" + " " * level + "}"


def _is_set(message, field) -> bool:
    if field.label == descriptor.FieldDescriptor.LABEL_REPEATED:
        return len(getattr(message, field.name)) > 0
    if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE or field.containing_oneof is not None:
        return message.HasField(field.name)
    return getattr(message, field.name) != field.default_value


def _field_json(message, field, preserve_names: bool, level: int) -> str:
    value = getattr(message, field.name)
    pad = "\n" + " " * (level + 1)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if not value:
            return "{}"
        value_field = field.message_type.fields_by_name["value"]
        entries = []
        for key in sorted(value):
            item = value[key]
            text = (_message_json(item, preserve_names, level + 1) if value_field.message_type
                    else _scalar_json(value_field, item))
            entries.append(f"{pad}{_json_string(str(key))}: {text}")
        return "{" + ",".join(entries) + "\n" + " " * level + "}"
    if field.label == descriptor.FieldDescriptor.LABEL_REPEATED:
        if not len(value):
            return "[]"
        items = [_message_json(v, preserve_names, level + 1) if field.message_type else _scalar_json(field, v)
                 for v in value]
        return "[" + ",".join(pad + item for item in items) + "\n" + " " * level + "]"
    if field.message_type is not None:
        return _message_json(value, preserve_names, level)
    return _scalar_json(field, value)


def proto_json(message, preserve_names: bool = False) -> str:
    """MessageToJsonString(add_whitespace, always_print_primitive_fields): ends with a newline."""
    return _message_json(message, preserve_names, 0) + "\n"


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> bytes:
    """http_rest_api_util.cc ToJsonString(GetModelMetadataResponse): the model spec and the
    SignatureDefMap printed apart (proto field names) and joined as that function joins them."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF].Unpack(signatures)
    return ("{\n" + '"model_spec":' + proto_json(response.model_spec, True) + ",\n" + '"metadata": {'
            + '"signature_def": ' + proto_json(signatures, True) + "}\n" + "}\n").encode()


# --- the handler ------------------------------------------------------------------------------------

class RestApi:
    """Answers one REST request: (HTTP status, headers, body)."""

    def __init__(self, core: Core, monitoring_path: Optional[str], timeout_ms: int = 30000, cors: bool = False):
        self.core, self.monitoring_path, self.timeout_ms, self.cors = core, monitoring_path, timeout_ms, cors

    def handle(self, method: str, target: str, headers, body: bytes) -> Tuple[int, list, bytes]:
        if self.monitoring_path and target.split("?")[0].split("#")[0] == self.monitoring_path:
            return self._prometheus(target)
        if not API_PATH.fullmatch(target):
            return 404, [("Content-Type", "text/html")], _error_page(404, "Not Found")
        started = time.perf_counter()
        parsed = {"model": "", "api": ""}  # ProcessRequest's model_name and method, set as soon as parsed
        response_headers, output = [], b""
        try:
            if method == "OPTIONS":
                if not re.search(r"https?://", headers.get("Origin", "")):
                    raise failed_precondition("Origin header is missing in CORS preflight")
            else:
                response_headers.append(("Content-Type", JSON))
                output = self._process(method, target, body, parsed)
            status = "OK"
        except Exception as e:
            error = from_tf_error(e)
            status = error.code_name
            if method != "OPTIONS":
                output = json_tensor.status_json(error.message)
        if self.cors:  # http_rest_api_util.cc AddCORSHeaders
            response_headers += [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
                                 ("Access-Control-Allow-Headers", "Content-Type")]
        if status == "OK":
            self.core.metrics.observe(REQUEST_LATENCY, (parsed["model"], parsed["api"], "REST"),
                                      (time.perf_counter() - started) * 1e6)
        self.core.metrics.count_request(parsed["model"], status)
        return (200 if status == "OK" else error.http_status), response_headers, output

    def _prometheus(self, target: str):
        """http_server.cc ProcessPrometheusRequest: the page, or 400 if the path has a query."""
        if target != self.monitoring_path:
            return 400, [("Content-Type", "text/plain")], \
                f"Unexpected path: {target}. Should be {self.monitoring_path}".encode()
        return 200, [("Content-Type", "text/plain")], self.core.metrics.page().encode()

    def _process(self, method: str, target: str, body: bytes, parsed: dict) -> bytes:
        """http_rest_api_handler.cc ProcessRequest: the JSON answer; `parsed` gets the model name
        and the API as captured (what metrics are labelled with)."""
        malformed = invalid_argument(f"Malformed request: {method} {target}")
        match = (PREDICTION_PATH.fullmatch(target) if method == "POST" else
                 STATUS_PATH.fullmatch(target) if method == "GET" else None)
        if match is None:
            raise malformed
        model_name = _decode_arg(match.group(1)) if match.group(1) else ""
        parsed["model"] = model_name
        version = None
        if match.group(2):
            version = int(match.group(2))
            if version > INT64_MAX:
                raise invalid_argument(f"Failed to convert version: {match.group(2)} to numeric.")
        label = _decode_arg(match.group(3)) if match.group(3) else None
        captured = match.group(4) or ""
        if method == "POST":
            parsed["api"] = captured
            if captured == "predict":
                return self._predict(model_name, version, label, body)
            if captured in ("regress", "classify"):
                return self._examples(captured, model_name, version, label, body)
            raise malformed
        if not model_name:
            raise invalid_argument("Missing model name in request.")
        if captured == "metadata":
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF])
            self._spec(request.model_spec, model_name, version, label)
            return metadata_json(self.core.metadata(request))
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model_name, version, label)
        return proto_json(self.core.status(request)).encode()

    @staticmethod
    def _spec(model_spec, model_name: str, version: Optional[int], label: Optional[str]) -> None:
        """http_rest_api_util.cc FillModelSpecWithNameVersionAndLabel."""
        model_spec.name = model_name
        if version is not None and label is not None:
            raise invalid_argument(f"Both model version ({version}) and model version label ({label}) "
                                   "cannot be supplied.")
        if version is not None:
            model_spec.version.value = version
        if label is not None:
            model_spec.version_label = label

    def _predict(self, model_name: str, version, label, body: bytes) -> bytes:
        """ProcessPredictRequest: JSON -> PredictRequest (GetInfoMap for the signature's inputs)
        -> Predict with the REST timeout -> MakeJsonFromTensors."""
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model_name, version, label)

        def tensor_infos(signature_name: str):
            servable = self.core.servable(request.model_spec)
            name = signature_name or DEFAULT_SIGNATURE
            if name not in servable.signature_defs:
                raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
            return servable.signature_defs[name].inputs

        signature_name, inputs, output_format = json_tensor.fill_predict_request(body, tensor_infos)
        request.model_spec.signature_name = signature_name
        _, outputs = self.core.predict_arrays(request, inputs, self.timeout_ms)
        return json_tensor.tensors_to_json(outputs, output_format)

    def _examples(self, api: str, model_name: str, version, label, body: bytes) -> bytes:
        """ProcessRegressRequest / ProcessClassifyRequest."""
        request = regression_pb2.RegressionRequest() if api == "regress" else classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, model_name, version, label)
        json_tensor.fill_example_request(body, request)
        if api == "regress":
            response = self.core.regress(request, self.timeout_ms)
            return json_tensor.regression_json([r.value for r in response.result.regressions])
        _, rows = self.core.classification_rows(request, self.timeout_ms)
        return json_tensor.classification_json([[(label if label is not None else b"", score or 0.0)
                                                 for label, score in row] for row in rows])


# --- HTTP --------------------------------------------------------------------------------------------

_EVHTTP_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH")
# libevent http.c end_of_path: what a strict request-URI may hold (else 400 Bad Request).
_URI = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*"
                  r"(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?"
                  r"(?:#(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?")


class _BadRequest(Exception):
    def __init__(self, code: int = 400, reason: str = "Bad Request"):
        super().__init__(reason)
        self.code, self.reason = code, reason


def make_rest_server(api: RestApi, host: str, port: int, threads: int = 0) -> http.server.ThreadingHTTPServer:
    """The HTTP layer: one thread per connection (evhttp's executor has --rest_api_num_threads;
    requests beyond them queue there), HTTP/1.1 keep-alive, 50 s socket timeout as evhttp's
    default connection timeout, and libevent's error pages for what HTTP itself refuses."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
        timeout = 50

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                data = bytearray()
                while True:
                    line = self.rfile.readline(65537)
                    try:
                        size = int(line.split(b";")[0].strip(), 16)
                    except ValueError:
                        raise _BadRequest()
                    if size < 0 or len(data) + size > MAX_BODY_BYTES:
                        raise _BadRequest(413, "Payload Too Large")
                    if size == 0:
                        while self.rfile.readline(65537).strip():
                            pass
                        break
                    chunk = self.rfile.read(size)
                    if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                        raise _BadRequest()
                    data += chunk
                body = bytes(data)
            else:
                length_text = self.headers.get("Content-Length") or "0"
                try:
                    length = int(length_text)
                except ValueError:
                    raise _BadRequest()
                if length < 0:
                    raise _BadRequest()
                if length > MAX_BODY_BYTES:
                    raise _BadRequest(413, "Payload Too Large")
                body = self.rfile.read(length)
                if len(body) != length:
                    raise _BadRequest()
            if self.headers.get("Content-Encoding", "").lower() == "gzip":  # evhttp_request.cc NeedUncompressGzipContent
                try:
                    body = gzip.decompress(body)
                except (OSError, EOFError, zlib.error):
                    body = b""
            return body

        def _serve(self):
            try:
                if not _URI.fullmatch(self.path):
                    raise _BadRequest()
                body = self._body()
            except _BadRequest as e:
                self._reply(e.code, [("Content-Type", "text/html"), ("Connection", "close")],
                            _error_page(e.code, e.reason))
                self.close_connection = True
                return
            status, headers, output = api.handle(self.command, self.path, self.headers, body)
            self._reply(status, headers, output)

        def _reply(self, status: int, headers, output: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(output)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(output)

        def send_error(self, code, message=None, explain=None):
            """What HTTP itself refuses (a bad request line, an unknown method): libevent's page."""
            code = 400 if code == 501 else code
            reason = self.responses.get(code, ("Error",))[0]
            self.close_connection = True
            try:
                self._reply(code, [("Content-Type", "text/html"), ("Connection", "close")], _error_page(code, reason))
            except OSError:
                pass

        def log_message(self, *args):  # one line per request would drown the server log
            pass

    for method in _EVHTTP_METHODS:
        setattr(Handler, f"do_{method}", Handler._serve)
    if threads > 0:  # --rest_api_num_threads: the executor's threads; more requests wait for one
        slots = threading.BoundedSemaphore(threads)
        handle = api.handle

        def limited(*args):
            with slots:
                return handle(*args)
        api.handle = limited

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    server = Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="rest-api", daemon=True).start()
    return server
