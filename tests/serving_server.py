"""`movierec serve` in a subprocess on 127.0.0.1, as the serving contract and load tests run it."""
import subprocess
import time

import grpc
import portpicker
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.cli import MOVIEREC

MODEL = "movierec"


class Server:
    """The server process and stubs for it; polls for new versions every 0.5 s, so swaps are quick."""

    def __init__(self, serving_dir, log_path):
        self.serving_dir, self.port = serving_dir, portpicker.pick_unused_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [*MOVIEREC, "serve", "--model-dir", serving_dir, "--port", str(self.port),
             "--poll-seconds", "0.5"], stdout=self.log, stderr=subprocess.STDOUT)
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
