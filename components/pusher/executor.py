"""Pusher executor that publishes versions atomically and never pushes the same model twice.

TFX's filesystem Pusher copies straight into `<base>/<version>/`, so TF Serving can see a
half-copied version, and a rerun whose Trainer was cached pushes the already-serving model again
as a new version. Here a version is staged in a hidden folder and renamed into place when
complete, and a model whose SavedModel fingerprint is already served is not pushed again.
A push that fails (a full disk, a folder that cannot be written) removes its staging folder and
says where it failed; the versions already served are untouched. Staging folders of pushes whose
process died (killed mid-copy) are removed by the next push from this machine.
After a push, the TF Serving deploy files beside the versions are refreshed (deploy.py).

On object storage (gs://, s3://) there is no atomic folder rename: TensorFlow's filesystems
rename a folder object by object, in key order, so `saved_model.pb` would land before
`variables/`. There the staged version is copied to `<base>/<version>/` with `saved_model.pb`
last. TF Serving 2.16.1 takes every child of the base path whose whole name parses as an integer
as a version (sources/storage_path/file_system_storage_path_source.cc: ParseVersionNumber, i.e.
safe_strto64, in IndexChildrenByVersion), as soon as any object under it exists, and checks
nothing else; `.incoming-*` never parses, so staging is never loaded. A version caught mid-copy
has no saved_model.pb yet, so loading it fails with NotFound, and TF Serving retries a failed
load (model_servers/server.h: max_num_load_retries 5, load_retry_interval_micros 60 s), by
which time the copy is complete. A version is only counted as served (`version_serving`) once
its saved_model.pb is there.
"""
import os
import posixpath
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

from components import infra_blessing
from ratings import paths
from ratings.errors import MovierecError
from serving import deploy
from serving.contract import model_names, served_versions

FINGERPRINT_FILE = "fingerprint.pb"
# The SavedModel's graph: what TF Serving's loader reads first; copied last into a remote version.
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
STAGING_PREFIX = ".incoming-"
# .incoming-<version>-<host>-<pid>-<uuid>: whose staging folder it is, to tell a dead push's leftovers.
STAGING_OWNER = re.compile(re.escape(STAGING_PREFIX) + r"\d+-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{32}$")
# Custom properties of the PushedModel artifact, read by the run summary.
PUSHED = "pushed"
PUSHED_VERSION = "pushed_version"
PUSHED_DESTINATION = "pushed_destination"
PUSH_NOTE = "push_note"


def _fingerprint(model_dir: str) -> Optional[bytes]:
    path = paths.join(model_dir, FINGERPRINT_FILE)
    return io_utils.read_bytes_file(path) if fileio.exists(path) else None


def _complete(version_dir: str) -> bool:
    return any(fileio.exists(paths.join(version_dir, name)) for name in SAVED_MODEL_FILES)


def version_serving(base: str, model_dir: str) -> Optional[int]:
    """The served version that holds exactly this SavedModel, if any (a remote version still
    being copied, or whose push died mid-copy, has no saved_model.pb and is not served)."""
    fingerprint = _fingerprint(model_dir)
    if fingerprint is None:
        return None
    for version in reversed(served_versions(base)):
        version_dir = paths.join(base, str(version))
        if _fingerprint(version_dir) == fingerprint and _complete(version_dir):
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
    for name in paths.children(base):
        owner = STAGING_OWNER.match(name)
        if owner and owner["host"] == socket.gethostname() and not _alive(int(owner["pid"])):
            fileio.rmtree(paths.join(base, name))


def copy_graph_last(source: str, target: str) -> None:
    """Copies the SavedModel folder `source` to `target` file by file, saved_model.pb last, so
    that whatever of `target` exists before the end has no graph and does not load."""
    files = [posixpath.relpath(paths.join(folder, name), source)
             for folder, _, names in fileio.walk(source) for name in names]
    for relative in sorted(files, key=lambda f: (f in SAVED_MODEL_FILES, f)):
        destination = paths.join(target, relative)
        fileio.makedirs(paths.parent(destination))
        fileio.copy(paths.join(source, relative), destination, overwrite=True)


def _move_into_place(staging: str, version_dir: str) -> None:
    """Local filesystems rename the folder atomically; object stores get a copy, graph last
    (see the module docstring), and the staging copy is removed by publish."""
    if paths.is_remote(version_dir):
        copy_graph_last(staging, version_dir)
    else:
        fileio.rename(staging, version_dir)


def publish(model_dir: str, base: str) -> int:
    """Copies a SavedModel to `<base>/<version>`, complete or not loadable at all; versions only
    increase."""
    staging = version_dir = None
    placed = False
    try:
        fileio.makedirs(base)
        _remove_dead_staging(base)
        versions = served_versions(base)
        version = max(int(time.time()), versions[-1] + 1 if versions else 0)
        staging = paths.join(
            base, f"{STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}")
        version_dir = paths.join(base, str(version))
        io_utils.copy_dir(model_dir, staging)
        _move_into_place(staging, version_dir)
        placed = True
    except (OSError, tf.errors.OpError) as e:  # fileio raises TensorFlow's errors for local files too
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PushError(f"{base}: push failed, served versions unchanged ({reason})") from e
    finally:
        for leftover in (staging, None if placed else version_dir):
            if leftover and fileio.exists(leftover):
                fileio.rmtree(leftover)
    return version


def why_not_blessed(input_dict: Dict[str, List[types.Artifact]]) -> str:
    """Which validator held the model back: the model gates, or infra validation (and its reason)."""
    model_blessing = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY) or []
    infra_blessings = input_dict.get(standard_component_specs.INFRA_BLESSING_KEY) or []
    if all(model_utils.is_model_blessed(b) for b in model_blessing) and infra_blessings \
            and not model_utils.is_infra_validated(infra_blessings[0]):
        return f"TF Serving could not serve it ({infra_blessing.note(infra_blessings[0])})"
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
        serving_dir = paths.parent(base)
        paths.write_files(serving_dir, deploy.all_files(model_names(serving_dir)))
        pushed_model.set_int_custom_property(PUSHED, 1)
        pushed_model.set_string_custom_property(PUSHED_VERSION, str(version))
        pushed_model.set_string_custom_property(PUSHED_DESTINATION, paths.join(base, str(version)))
        pushed_model.set_string_custom_property(PUSH_NOTE, f"pushed as version {version}")
        logging.info("Pushed %s to %s/%d", model_dir, base, version)

    @staticmethod
    def _not_pushed(pushed_model: types.Artifact, why: str) -> None:
        pushed_model.set_int_custom_property(PUSHED, 0)
        pushed_model.set_string_custom_property(PUSH_NOTE, f"not pushed: {why}")
        logging.info("Not pushed: %s", why)
