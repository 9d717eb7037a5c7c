"""InfraValidator executor: serve the candidate as production would, send canaries, bless or not.

The candidate is copied as version 1 of `<model_name>` into a scratch serving dir that gets the
deploy files a push writes (serving/deploy.py: models.config, batching_parameters.txt,
monitoring.config), and a model server is started on it with production's flags
(`deploy.server_args`: batching on, warmup on) on free 127.0.0.1 ports. The server is the real
`tensorflow_model_server` when one is configured or on PATH, else `movierec serve`, its stand-in
with the same flags and rules. One deviation from production: `--max_num_load_retries=0`, so a
version that cannot load fails at once instead of after TF Serving's retries (5 x 60 s).

Blessed when the version becomes AVAILABLE (its warmup requests replayed under batching) and one
canary request per client signature (serving/contract.py `signature_inputs`, rows with
different k as a merged batch has them) is answered with one output row per input row. Otherwise
not blessed, with one line saying why: the server's own error when it exits (TF Serving prints
"Failed to start server. Error: ..." when a model fails to load), the version's status error,
or the canary's status code and message.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

import grpc
import numpy as np
import portpicker
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.components.util import model_utils
from tfx.utils import io_utils, path_utils

from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc)

from components.infra_blessing import BLESSED, BLESSED_FILE, NOT_BLESSED_FILE, NOTE
from ratings import paths
from serving import deploy
from serving import contract

DEFAULT_TIMEOUT_SECONDS = 300
SERVER_BINARY = "tensorflow_model_server"
# Canary rows: a user MovieLens-style data knows and one no model knows, with different k.
CANARY_USERS, CANARY_MOVIES, CANARY_KS = ("1", "infra-validation-unknown"), ("1", "1"), (5, 2)


class InfraValidationFailed(Exception):
    """The model server could not serve the model; the message says why, in one line."""


def server_command(model_server: str, config_dir: str, grpc_port: int, rest_port: int):
    """(name, argv) of the model server to validate with: `model_server` if given, else
    tensorflow_model_server from PATH, else `movierec serve`; production's flags either way."""
    binary = model_server or shutil.which(SERVER_BINARY)
    args = [*deploy.server_args(config_dir, grpc_port, rest_port), "--max_num_load_retries=0"]
    if binary:
        return binary, [binary, *args]
    return "movierec serve", [sys.executable, "-m", "movierec.cli", "serve", *args]


def _last_line(path: str) -> str:
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "(no output)"


class Stubs:
    """TF Serving's gRPC stubs on one channel, every call with a deadline."""

    def __init__(self, address: str, model_name: str, timeout_s: float = 30):
        self.channel = grpc.insecure_channel(address)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_name, self.timeout_s = model_name, timeout_s

    def status(self):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        return self.models.GetModelStatus(request, timeout=self.timeout_s)

    def close(self) -> None:
        self.channel.close()


def wait_until_available(process: subprocess.Popen, log_path: str, stubs: Stubs, name: str,
                         deadline: float) -> None:
    """Until a version of the model is AVAILABLE; InfraValidationFailed if the server exits, the
    version ends (failed load or warmup) or the deadline passes."""
    while True:
        if process.poll() is not None:
            raise InfraValidationFailed(f"{name} exited with code {process.returncode}: {_last_line(log_path)}")
        try:
            statuses = stubs.status().model_version_status
        except grpc.RpcError:  # not listening yet, or the model not known yet
            statuses = []
        if any(s.state == s.AVAILABLE for s in statuses):
            return
        ended = [s for s in statuses if s.state == s.END]
        if ended:
            raise InfraValidationFailed(f"{name} could not load the model: {ended[0].status.error_message}")
        if time.monotonic() > deadline:
            raise InfraValidationFailed(f"{name} did not make the model available in time")
        time.sleep(0.2)


def send_canaries(stubs: Stubs) -> List[str]:
    """One request per client signature (Regress through the Regress API); the signatures answered."""
    answered = []
    for signature, inputs in contract.signature_inputs(CANARY_USERS, CANARY_MOVIES, CANARY_KS):
        rows = len(CANARY_USERS)
        try:
            if signature == contract.REGRESS:
                response = stubs.predictions.Regress(contract.regression_request(
                    stubs.model_name, signature, list(inputs[contract.INPUTS])), timeout=stubs.timeout_s)
                outputs = {contract.OUTPUTS: [r.value for r in response.result.regressions]}
            else:
                response = stubs.predictions.Predict(contract.predict_request(stubs.model_name, signature, inputs),
                                                     timeout=stubs.timeout_s)
                outputs = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
        except grpc.RpcError as e:
            raise InfraValidationFailed(
                f"canary request to '{signature}' failed: {e.code().name}: {e.details()}") from e
        wrong = sorted(key for key, value in outputs.items() if np.ndim(value) < 1 or len(value) != rows)
        if wrong or not outputs:
            raise InfraValidationFailed(f"canary request to '{signature}': outputs {wrong} do not have "
                                        f"one row per input row ({rows})")
        answered.append(signature)
    return answered


def validate(model_path: str, model_name: str, model_server: str, timeout_s: float, workdir: str) -> str:
    """Serves the model at `model_path` as production would and sends the canaries; returns a
    one-line note; InfraValidationFailed says why not."""
    started = time.monotonic()
    models = os.path.join(workdir, "models")
    io_utils.copy_dir(model_path, os.path.join(models, model_name, "1"))
    paths.write_files(workdir, deploy.config_files([model_name], mount=models))
    grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    name, argv = server_command(model_server, workdir, grpc_port, rest_port)
    log_path = os.path.join(workdir, "server.log")
    logging.info("Infra validation: %s", " ".join(argv))
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stubs = Stubs(f"127.0.0.1:{grpc_port}", model_name)
    try:
        wait_until_available(process, log_path, stubs, name, started + timeout_s)
        answered = send_canaries(stubs)
    finally:
        stubs.close()
        # Nothing to shut down gracefully in a scratch server; its SIGTERM grace (gRPC, REST, the
        # version poller) cost ~5-9 s of every run.
        process.kill()
        process.wait()
        logging.info("Infra validation server log:\n%s", open(log_path, errors="replace").read()[-5000:])
    return (f"served by {name} with batching and warmup; canary requests to {', '.join(answered)} "
            f"answered ({time.monotonic() - started:.1f} s)")


def mark(blessing: types.Artifact, blessed: bool, note: str) -> None:
    io_utils.write_string_file(os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
    blessing.set_int_custom_property(BLESSED, int(blessed))
    blessing.set_string_custom_property(NOTE, note)
    logging.info("Infra validation: %s", note)


# The component's inputs, output and properties, named here once: component.py declares them with
# these names and Do reads them by them.
MODEL_KEY, MODEL_BLESSING_KEY, BLESSING_KEY = "model", "model_blessing", "blessing"
MODEL_NAME_KEY, MODEL_SERVER_KEY, TIMEOUT_KEY = "model_name", "model_server", "timeout_seconds"


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])
        model_blessing: Sequence[types.Artifact] = input_dict.get(MODEL_BLESSING_KEY) or []
        if model_blessing and not model_utils.is_model_blessed(model_blessing[0]):
            mark(blessing, False, "not run: the model gates did not bless the model")
            return
        model_path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        with tempfile.TemporaryDirectory(prefix="infra-validation-") as workdir:
            try:
                mark(blessing, True, validate(model_path, exec_properties[MODEL_NAME_KEY],
                                              exec_properties.get(MODEL_SERVER_KEY) or "",
                                              exec_properties.get(TIMEOUT_KEY) or DEFAULT_TIMEOUT_SECONDS,
                                              workdir))
            except InfraValidationFailed as e:
                mark(blessing, False, str(e))
