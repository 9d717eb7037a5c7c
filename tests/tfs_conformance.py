"""The conformance suite's machinery: TF Serving's own test cases, carried as data
(tests/e2e/tfs_conformance/<test file>.yaml, one file per TF Serving test file), run against real
`movierec serve` processes.

A vector file names its `source` (a file of tensorflow/serving at tag 2.16.1), declares the models
its cases need (`models`: name -> server, version folders built by tests/tfs_conformance_models.py,
version policy, labels) and lists `cases`. A case cites the TEST it comes from (`test`), says what
it checks (`what`), and is either `not_applicable` (with the reason; docs/tf-serving-rules.md
lists them) or a list of `steps`, each one request and what TF Serving answers:

- rest: {method, path, body | json, headers, server} -> expect {status, json, json_text, body,
  error, error_contains, content_type, classified_examples}
- grpc: {call, request (text proto), server, via_socket} -> expect {code, message,
  message_contains, response (text proto), signature_defs, signature_names}
- prometheus: {server} -> expect {contains, lines, buckets_of}
- command: [movierec serve arguments] -> expect {exit, stdout, stdout_contains, stderr_contains}
- fs: {model, rename: [a, b] | delete: name | add: {folder: builder}}; config: {set: {...} | remove: [names]}
- sleep: seconds; any step with `wait: true` is retried until it passes (60 s).

`json` compares as RapidJSON's CompareJson does (numbers by value, objects unordered);
`json_text` compares numbers by their text (json_tensor_test.cc CompareJsonAllValuesAsStrings).
"""
import base64
import dataclasses
import http.client
import json
import math
import os
import pathlib
import shutil
import socket
import subprocess
import time
from typing import Dict, List, Optional

import grpc
import portpicker
import yaml
from google.protobuf import text_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)
from tensorflow_serving.config import model_server_config_pb2

from tests import tfs_conformance_models
from tests.cli import MOVIEREC

VECTORS = pathlib.Path(__file__).resolve().parent / "e2e" / "tfs_conformance"
WAIT_S = 60

CALLS = {  # gRPC method -> (stub, request type, response type)
    "Predict": ("predictions", predict_pb2.PredictRequest, predict_pb2.PredictResponse),
    "Classify": ("predictions", classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
    "Regress": ("predictions", regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
    "GetModelMetadata": ("predictions", get_model_metadata_pb2.GetModelMetadataRequest,
                         get_model_metadata_pb2.GetModelMetadataResponse),
    "GetModelStatus": ("models", get_model_status_pb2.GetModelStatusRequest,
                       get_model_status_pb2.GetModelStatusResponse),
}


@dataclasses.dataclass
class Case:
    file: str
    source: str
    test: str
    what: str
    steps: list
    not_applicable: str = ""

    @property
    def id(self) -> str:
        return f"{self.file}:{self.test}"


def vector_files() -> List[pathlib.Path]:
    return sorted(VECTORS.glob("*.yaml"))


def load(path: pathlib.Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def cases() -> List[Case]:
    """Every case of every vector file; a TEST carried as several cases gets #2, #3, ... ids."""
    found, seen = [], {}
    for path in vector_files():
        data = load(path)
        for entry in data["cases"]:
            case = Case(path.stem, data["source"], entry["test"], entry.get("what", ""), entry.get("steps", []),
                        entry.get("not_applicable", ""))
            seen[case.id] = seen.get(case.id, 0) + 1
            if seen[case.id] > 1:
                case.test = f"{case.test}#{seen[case.id]}"
            found.append(case)
    return found


def models() -> Dict[str, dict]:
    """Every model the vector files declare, by name."""
    declared = {}
    for path in vector_files():
        for name, spec in (load(path).get("models") or {}).items():
            assert name not in declared, f"model {name} declared twice"
            declared[name] = spec
    return declared


# --- servers ---------------------------------------------------------------------------------------

class Servers:
    """The `movierec serve` processes the cases talk to, by name:

    - main: models.config with most models, polled every second (config and file system), REST with
      a 5 s timeout (as tensorflow_model_server_test.py runs the server), a gRPC UNIX socket,
      Prometheus on;
    - flags: batching off, --enable_signature_method_name_check, --rest_api_timeout_in_ms=300,
      --file_system_poll_wait_seconds=0 (one poll), models.config read once, gRPC channel arguments,
      the gRPC health service, CORS headers, and an argument it does not know;
    - waiting_missing, waiting_empty, waiting: one model each (--model_name/--model_base_path) whose
      base path is missing, holds no version, or is missing until a case makes it: TF Serving waits
      for a version before it opens its ports.
    """

    FLAGS = {
        "main": ["--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
                 "--rest_api_timeout_in_ms=5000", "--max_num_load_retries=0"],
        "flags": ["--enable_signature_method_name_check", "--rest_api_timeout_in_ms=300",
                  "--file_system_poll_wait_seconds=0", "--max_num_load_retries=0",
                  "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
                  "--enable_grpc_healthcheck_service", "--rest_api_enable_cors_support", "--no_such_flag=1"],
    }

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.library = root / "library"
        self.models = models()
        self.base_paths: Dict[str, pathlib.Path] = {}
        self.processes: Dict[str, subprocess.Popen] = {}
        self.ports: Dict[str, tuple] = {}
        self.logs: Dict[str, pathlib.Path] = {}
        self.socket = root / "tf-serving.sock"
        self.channels: Dict[str, grpc.Channel] = {}

    # models on disk

    def built(self, builder: str) -> pathlib.Path:
        path = self.library / builder
        if not path.exists():
            tfs_conformance_models.BUILDERS[builder](str(path))
        return path

    def place(self, model: str, folder: str, content: str) -> None:
        """One child of a model's base path: a built model, an empty "dir" or a "file"."""
        target = self.base_paths[model] / folder
        if content == "dir":
            target.mkdir(parents=True)
        elif content == "file":
            target.write_text("not a model")
        else:  # copied under another name, then renamed: a poll never sees half a version
            staging = self.base_paths[model] / f".staging-{folder}"
            shutil.copytree(self.built(content), staging)
            os.rename(staging, target)

    def config_text(self, server: str) -> str:
        config = model_server_config_pb2.ModelServerConfig()
        for name, spec in self.models.items():
            if spec.get("server", "main") != server or spec.get("in_config") is False:
                continue
            model = config.model_config_list.config.add(name=name, base_path=str(self.base_paths[name]),
                                                        model_platform="tensorflow")
            if spec.get("policy"):
                text_format.Parse(spec["policy"], model.model_version_policy)
            for label, version in (spec.get("labels") or {}).items():
                model.version_labels[label] = version
        return text_format.MessageToString(config)

    def write_config(self, server: str) -> None:
        path = self.root / f"{server}.config"
        (self.root / f"{server}.config.tmp").write_text(self.config_text(server))
        os.replace(self.root / f"{server}.config.tmp", path)

    def prepare(self) -> None:
        for name, spec in self.models.items():
            self.base_paths[name] = self.root / "models" / name
            if spec.get("base_path_exists", True):
                self.base_paths[name].mkdir(parents=True)
                for folder, content in (spec.get("versions") or {}).items():
                    self.place(name, str(folder), content)
        for server in ("main", "flags"):
            self.write_config(server)
        for path in vector_files():
            for name, text in (load(path).get("files") or {}).items():
                (self.root / name).write_text(text)
        (self.root / "monitoring.config").write_text(
            'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n')

    # Servers serving one model given by --model_name/--model_base_path, and that model.
    SINGLE = {"waiting_missing": "missing_base_path", "waiting_empty": "empty_base_path", "waiting": "late"}

    def start(self) -> None:
        """All servers at once (their starts overlap)."""
        for server in ("main", "flags", *self.SINGLE):
            grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
            flags = [f"--port={grpc_port}", f"--rest_api_port={rest_port}"]
            if server in self.SINGLE:
                model = self.SINGLE[server]
                flags += [f"--model_name={model}", f"--model_base_path={self.base_paths[model]}",
                          "--file_system_poll_wait_seconds=1"]
            else:
                flags += [f"--model_config_file={self.root / (server + '.config')}", *self.FLAGS[server]]
            if server == "main":
                flags += [f"--grpc_socket_path={self.socket}", f"--monitoring_config_file={self.root}/monitoring.config"]
            self.ports[server] = (grpc_port, rest_port)
            self.logs[server] = self.root / f"{server}.log"
            with open(self.logs[server], "w") as log, open(self.root / f"{server}.out", "w") as out:
                self.processes[server] = subprocess.Popen([*MOVIEREC, "serve", *flags], stdout=out, stderr=log)

    def wait_ready(self, server: str, timeout_s: float = 300) -> None:
        """Until the gRPC port answers (TF Serving opens it once every model's latest version is
        AVAILABLE)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.processes[server].poll() is None, f"{server} exited: {self.logs[server].read_text()[-3000:]}"
            if listening(self.ports[server][0]):
                return
            time.sleep(0.3)
        raise TimeoutError(f"{server} did not start: {self.logs[server].read_text()[-3000:]}")

    def channel(self, server: str, via_socket: bool = False) -> grpc.Channel:
        key = server + (":socket" if via_socket else "")
        if key not in self.channels:
            target = f"unix:{self.socket}" if via_socket else f"127.0.0.1:{self.ports[server][0]}"
            self.channels[key] = grpc.insecure_channel(target, options=[
                ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        return self.channels[key]

    def stop(self) -> Dict[str, int]:
        for channel in self.channels.values():
            channel.close()
        codes = {}
        for name, process in self.processes.items():
            process.terminate()
            codes[name] = process.wait(timeout=60)
        return codes


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- comparing ------------------------------------------------------------------------------------

class Number(str):
    """A JSON number kept as the text it was written as."""


def _load_numbers_as_text(text):
    return json.loads(text, parse_float=Number, parse_int=Number, parse_constant=Number)


def _load_numbers(text):
    return json.loads(text, parse_constant=float)


def _as_values(value):
    """Expected JSON from YAML (objects, or JSON text)."""
    return _load_numbers(value) if isinstance(value, str) else value


def json_equal(actual, expected) -> bool:
    """rapidjson GenericValue::operator==: objects unordered, numbers by value (1 == 1.0)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            json_equal(actual[k], expected[k]) for k in expected)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            json_equal(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return not math.isnan(expected) and actual == expected
    return actual == expected


def send_http(port: int, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None):
    """(status, headers, body bytes) of one HTTP request as written: method and path as given, no
    Accept-Encoding, a Content-Length for a body that is not chunked."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest(method, path, skip_accept_encoding=True)
    headers = dict(headers or {})
    if body is not None and "Transfer-Encoding" not in headers:
        headers.setdefault("Content-Length", str(len(body)))
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


def rest(servers: Servers, step: dict):
    """One REST step's request (body as text, JSON or base64) on its server."""
    body = step.get("body")
    if "json" in step:
        body = json.dumps(step["json"])
    if "body_base64" in step:
        body = base64.b64decode(step["body_base64"])
    if isinstance(body, str):
        body = body.encode("utf-8")
    return send_http(servers.ports[step.get("server", "main")][1], step.get("method", "GET"), step["path"], body,
                     step.get("headers"))


def check_rest(result, expect: dict) -> None:
    status, headers, body = result
    text = body.decode("utf-8", "replace")
    if "status" in expect:
        assert status == expect["status"], (status, text)
    if "content_type" in expect:
        assert headers.get("Content-Type") == expect["content_type"], headers
    for name, value in (expect.get("headers") or {}).items():
        assert headers.get(name) == value, headers
    for name in expect.get("headers_absent") or []:
        assert name not in headers, headers
    if "body" in expect:
        assert text == expect["body"], text
    for part in expect.get("body_contains") or []:
        assert part in text, text
    if "json" in expect:
        assert json_equal(_load_numbers(text), _as_values(expect["json"])), text
    if "json_text" in expect:
        assert _load_numbers_as_text(text) == _load_numbers_as_text(expect["json_text"]), text
    if "error" in expect:
        assert json.loads(text) == {"error": expect["error"]}, text
    for part in expect.get("error_contains") or []:
        assert part in json.loads(text)["error"], text
    if "classified_examples" in expect:
        rows = json.loads(body.decode("latin-1"))["results"]
        examples = [text_format.MessageToString(example_pb2.Example.FromString(label.encode("latin-1")))
                    for row in rows for label, _ in row]
        wanted = [text_format.MessageToString(text_format.Parse(e, example_pb2.Example()))
                  for e in expect["classified_examples"]]  # as text: NaN values compare equal
        assert examples == wanted, examples


def grpc_call(servers: Servers, step: dict):
    stub_name, request_type, _ = CALLS[step["call"]]
    channel = servers.channel(step.get("server", "main"), step.get("via_socket", False))
    stub = (prediction_service_pb2_grpc.PredictionServiceStub(channel) if stub_name == "predictions"
            else model_service_pb2_grpc.ModelServiceStub(channel))
    request = text_format.Parse(step.get("request", ""), request_type())
    try:
        return grpc.StatusCode.OK, "", getattr(stub, step["call"])(request, timeout=30)
    except grpc.RpcError as e:
        return e.code(), e.details(), None


def check_grpc(step: dict, result, expect: dict) -> None:
    code, message, response = result
    assert code.name == expect.get("code", "OK"), (code, message)
    if "message" in expect:
        assert message == expect["message"], message
    for part in expect.get("message_contains") or []:
        assert part in message, message
    if "response" in expect:
        wanted = text_format.Parse(expect["response"], CALLS[step["call"]][2]())
        assert response == wanted, f"{response}\n!=\n{wanted}"
    if "signature_names" in expect or "signature_defs" in expect:
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        if "signature_names" in expect:
            assert sorted(signatures.signature_def) == sorted(expect["signature_names"]), signatures.signature_def.keys()
        for name, text in (expect.get("signature_defs") or {}).items():
            wanted = text_format.Parse(text, type(signatures.signature_def[name])())
            assert signatures.signature_def[name] == wanted, signatures.signature_def[name]
    if "model_spec" in expect:
        assert response.model_spec == text_format.Parse(expect["model_spec"], type(response.model_spec)()), \
            response.model_spec
    if "versions" in expect:
        states = {s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
                  for s in response.model_version_status}
        assert states == {int(v): s for v, s in expect["versions"].items()}, states


def check_prometheus(servers: Servers, step: dict, expect: dict) -> None:
    status, _, body = rest(servers, {"server": step.get("server", "main"), "path": "/monitoring/prometheus/metrics"})
    page = body.decode()
    assert status == 200, page
    for part in expect.get("contains") or []:
        assert part in page, page
    lines = page.splitlines()
    if "lines" in expect:  # consecutive lines, as prometheus_exporter_test.cc's IsSubstring checks them
        assert "\n".join(expect["lines"]) + "\n" in page, page
    if "buckets_of" in expect:
        prefix = expect["buckets_of"]
        buckets = [line for line in lines if line.startswith(prefix + ",le=")]
        limits = [line[len(prefix) + 5:line.index('"}')] for line in buckets]
        assert limits == expect["le"], limits
        counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
        assert counts == sorted(counts) and counts[-1] >= 1, buckets  # cumulative
        name = prefix.split("_bucket{")[0]
        labels = prefix.split("{", 1)[1]
        assert f"{name}_count{{{labels}}} {counts[-1]}" in lines, page


def command(root: pathlib.Path, args: List[str], timeout_s: float = 300):
    args = [arg.replace("{root}", str(root)) for arg in args]
    return subprocess.run([*MOVIEREC, "serve", *args], capture_output=True, text=True, timeout=timeout_s)


def run_step(servers: Servers, step: dict) -> None:
    expect = step.get("expect") or {}
    if "rest" in step:
        check_rest(rest(servers, step["rest"]), expect)
    elif "grpc" in step:
        check_grpc(step["grpc"], grpc_call(servers, step["grpc"]), expect)
    elif "prometheus" in step:
        check_prometheus(servers, step["prometheus"] or {}, expect)
    elif "command" in step:
        result = command(servers.root, step["command"])
        assert result.returncode == expect.get("exit", 0), (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
        if "stdout" in expect:
            assert result.stdout == expect["stdout"].replace("{root}", str(servers.root)), result.stdout
        for part in expect.get("stdout_contains") or []:
            assert part.replace("{root}", str(servers.root)) in result.stdout, result.stdout
        for part in expect.get("stderr_contains") or []:
            assert part.replace("{root}", str(servers.root)) in result.stderr, result.stderr
    elif "log_contains" in step:
        text = servers.logs[step["log_contains"]].read_text()
        for part in expect.get("contains") or []:
            assert part in text, text[-3000:]
    elif "server_output" in step:
        text = (servers.root / f"{step['server_output']}.out").read_text()
        for part in expect.get("stdout_contains") or []:
            assert part in text, text
    elif "listening" in step:
        assert listening(servers.ports[step["listening"]][0]) == expect["listening"]
        assert servers.processes[step["listening"]].poll() is None, "the server exited"
    elif "fs" in step:
        fs = step["fs"]
        base = servers.base_paths[fs["model"]]
        if "rename" in fs:
            os.rename(base / str(fs["rename"][0]), base / str(fs["rename"][1]))
        if "delete" in fs:
            shutil.rmtree(base / str(fs["delete"]))
        if "mkdir" in fs:
            (base / str(fs["mkdir"])).mkdir(parents=True)
        for folder, content in (fs.get("add") or {}).items():
            servers.place(fs["model"], str(folder), content)
    elif "config" in step:
        change = step["config"]
        for name in change.get("remove") or []:
            servers.models[name]["in_config"] = False
        for name, spec in (change.get("set") or {}).items():
            servers.models[name].update(spec, in_config=True)
        servers.write_config(change.get("server", "main"))
    elif "sleep" in step:
        time.sleep(step["sleep"])
    else:
        raise ValueError(f"unknown step {step}")


def run(servers: Servers, case: Case) -> None:
    for step in case.steps:
        if not step.get("wait"):
            run_step(servers, step)
            continue
        deadline = time.time() + WAIT_S
        while True:
            try:
                run_step(servers, step)
                break
            except AssertionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)


def counts() -> Dict[str, int]:
    """Carried / not applicable, for the report and the docs."""
    all_cases = cases()
    not_applicable = [c for c in all_cases if c.not_applicable]
    return {"carried": len(all_cases), "not_applicable": len(not_applicable),
            "run": len(all_cases) - len(not_applicable)}


def not_applicable_table() -> List[tuple]:
    return [(c.source, c.test, c.not_applicable) for c in cases() if c.not_applicable]
