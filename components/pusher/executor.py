"""Pusher executor that publishes versions atomically and never pushes the same model twice.

TFX's filesystem Pusher copies straight into `<base>/<version>/`, so TF Serving can see a
half-copied version, and a rerun whose Trainer was cached pushes the already-serving model again
as a new version. Here a version is staged in a hidden folder and renamed into place when
complete, and a model whose SavedModel fingerprint is already served is not pushed again.
A push that fails (a full disk, a folder that cannot be written) removes its staging folder and
says where it failed; the versions already served are untouched. Staging folders of pushes whose
process died (killed mid-copy) are removed by the next push from this machine.
After a push, the TF Serving deploy files beside the versions are refreshed (deploy.py).
"""
import os
import re
import socket
import time
import uuid
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.components.util import model_utils
from tfx.utils import io_utils, proto_utils

from components import infra_validator
from movierec.errors import MovierecError
from components.pusher import deploy
from serving.contract import model_names, served_versions

FINGERPRINT_FILE = "fingerprint.pb"
STAGING_PREFIX = ".incoming-"
# .incoming-<version>-<host>-<pid>-<uuid>: whose staging folder it is, to tell a dead push's leftovers.
STAGING_OWNER = re.compile(re.escape(STAGING_PREFIX) + r"\d+-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{32}$")
# Custom properties of the PushedModel artifact, read by the run summary.
PUSHED = "pushed"
PUSHED_VERSION = "pushed_version"
PUSHED_DESTINATION = "pushed_destination"
PUSH_NOTE = "push_note"


def _fingerprint(model_dir: str) -> Optional[bytes]:
    path = os.path.join(model_dir, FINGERPRINT_FILE)
    return io_utils.read_bytes_file(path) if fileio.exists(path) else None


def version_serving(base: str, model_dir: str) -> Optional[int]:
    """The served version that holds exactly this SavedModel, if any."""
    fingerprint = _fingerprint(model_dir)
    if fingerprint is None:
        return None
    for version in reversed(served_versions(base)):
        if _fingerprint(os.path.join(base, str(version))) == fingerprint:
            return version
    return None


class PushError(MovierecError):
    """A push that could not complete; nothing was published."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_dead_staging(base: str) -> None:
    """Removes staging folders left by pushes from this machine whose process is gone."""
    for name in fileio.listdir(base):
        owner = STAGING_OWNER.match(name.rstrip("/"))
        if owner and owner["host"] == socket.gethostname() and not _alive(int(owner["pid"])):
            fileio.rmtree(os.path.join(base, name.rstrip("/")))


def publish(model_dir: str, base: str) -> int:
    """Copies a SavedModel to `<base>/<version>` atomically; versions only increase."""
    staging = None
    try:
        fileio.makedirs(base)
        _remove_dead_staging(base)
        versions = served_versions(base)
        version = max(int(time.time()), versions[-1] + 1 if versions else 0)
        staging = os.path.join(
            base, f"{STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}")
        io_utils.copy_dir(model_dir, staging)
        fileio.rename(staging, os.path.join(base, str(version)))
    except (OSError, tf.errors.OpError) as e:  # fileio raises TensorFlow's errors for local files too
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PushError(f"{base}: push failed, served versions unchanged ({reason})") from e
    finally:
        if staging and fileio.exists(staging):
            fileio.rmtree(staging)
    return version


def why_not_blessed(input_dict: Dict[str, List[types.Artifact]]) -> str:
    """Which validator held the model back: the Evaluator, or infra validation (and its reason)."""
    model_blessing = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY) or []
    infra_blessing = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY) or []
    if all(model_utils.is_model_blessed(b) for b in model_blessing) and infra_blessing \
            and not model_utils.is_infra_validated(infra_blessing[0]):
        return f"TF Serving could not serve it ({infra_validator.note(infra_blessing[0])})"
    return "the model was not blessed"


class Executor(tfx_pusher.Executor):
    """Filesystem push: blessed, not already served, staged then renamed into place."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._not_pushed(pushed_model, why_not_blessed(input_dict))
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                                  destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("movierec pushes to a filesystem destination only")
        base = destination.filesystem.base_directory
        model_dir = self.GetModelPath(input_dict)
        serving = version_serving(base, model_dir)
        if serving is not None:
            self._not_pushed(pushed_model, f"this model is already served as version {serving}")
            return
        version = publish(model_dir, base)
        serving_dir = os.path.dirname(os.path.normpath(base))
        deploy.write_deploy_files(serving_dir, model_names(serving_dir))
        pushed_model.set_int_custom_property(PUSHED, 1)
        pushed_model.set_string_custom_property(PUSHED_VERSION, str(version))
        pushed_model.set_string_custom_property(PUSHED_DESTINATION, os.path.join(base, str(version)))
        pushed_model.set_string_custom_property(PUSH_NOTE, f"pushed as version {version}")
        logging.info("Pushed %s to %s/%d", model_dir, base, version)

    @staticmethod
    def _not_pushed(pushed_model: types.Artifact, why: str) -> None:
        pushed_model.set_int_custom_property(PUSHED, 0)
        pushed_model.set_string_custom_property(PUSH_NOTE, f"not pushed: {why}")
        logging.info("Not pushed: %s", why)
