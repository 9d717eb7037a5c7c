"""`movierec serve` in a subprocess on 127.0.0.1, started from the pushed deploy files the way
docker-compose.yaml starts tensorflow_model_server (same flags; models.config with its /models
mount pointed at the serving dir), as the serving contract and load tests run it."""
import json
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import portpicker
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.deploy import local_flags
from tests.cli import MOVIEREC

MODEL = "movierec"
# The pushed model's contract (every input batch-major, serving/contract.py) and its
# batching_parameters.txt let TF Serving batch it: the server runs the deploy flags as pushed.
BATCHING = True


class Server:
    """The server process and stubs for it; polls for new versions every second, so swaps are quick."""

    def __init__(self, serving_dir, work_dir, batching: bool = BATCHING):
        self.serving_dir, self.port = serving_dir, portpicker.pick_unused_port()
        self.rest_port = portpicker.pick_unused_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = open(work_dir / "server.log", "w")
        self.process = subprocess.Popen(
            [*MOVIEREC, "serve", f"--port={self.port}", f"--rest_api_port={self.rest_port}",
             *local_flags(serving_dir, work_dir, batching), "--file_system_poll_wait_seconds=1"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(self.address)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    @property
    def model_base(self) -> str:
        return f"{self.serving_dir}/{MODEL}"

    def status(self, model=MODEL):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        return self.models.GetModelStatus(request, timeout=5)

    def rest(self, path, body=None):
        """(HTTP status, decoded JSON body) of a REST call."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.rest_port}{path}",
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def rest_text(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}{path}", timeout=10) as response:
            return response.status, response.read().decode()

    def wait_until_available(self, timeout_s=180):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.process.poll() is None, "server exited"
            try:
                if any(v.state == v.AVAILABLE for v in self.status().model_version_status):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        raise TimeoutError("server did not become available")

    def stop(self):
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()
