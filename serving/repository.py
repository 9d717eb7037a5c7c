"""The models a server serves: the newest version of each, loaded, warmed up and swapped in.

Layout as TF Serving expects it: `<base>/<model name>/<numeric version>/` (a SavedModel), or a
single model's `<base>/<numeric version>/`. A new version is loaded and warmed up beside the one
being served and swapped in atomically; requests already running finish on the version they got.
"""
import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Dict, List, Optional

import tensorflow as tf
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import prediction_log_pb2

from serving.contract import WARMUP_FILE, model_names, served_versions


class NotFound(LookupError):
    """No such model, version or signature."""


@dataclasses.dataclass
class Servable:
    name: str
    version: int
    path: str
    model: object
    signature_defs: Dict[str, object]

    def signature(self, name: str):
        if name not in self.signature_defs:
            raise NotFound(f"Serving signature name: \"{name}\" not found in signature def "
                           f"(model {self.name} version {self.version}); available: "
                           f"{', '.join(sorted(self.signature_defs))}")
        return self.model.signatures[name], self.signature_defs[name]


@dataclasses.dataclass
class VersionState:
    version: int
    state: str  # LOADING, AVAILABLE, END (as in TF Serving's ModelVersionStatus)
    error: str = ""


def load(name: str, version: int, path: str) -> Servable:
    signature_defs = dict(loader_impl.parse_saved_model(path).meta_graphs[0].signature_def)
    signature_defs.pop("__saved_model_init_op", None)
    return Servable(name, version, path, tf.saved_model.load(path), signature_defs)


def warmup_requests(path: str) -> List[prediction_log_pb2.PredictionLog]:
    file = os.path.join(path, WARMUP_FILE)
    if not tf.io.gfile.exists(file):
        return []
    logs = []
    for record in tf.data.TFRecordDataset(file):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


class ModelRepository:
    """Finds, loads and hot-swaps the newest version of every model under `base_dir`."""

    def __init__(self, base_dir: str, warmup: Callable[[Servable, prediction_log_pb2.PredictionLog], None]):
        self.base_dir = base_dir
        self._warmup = warmup
        self._lock = threading.Lock()
        self._serving: Dict[str, Servable] = {}
        self._states: Dict[str, Dict[int, VersionState]] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def model_dirs(self) -> Dict[str, str]:
        """{model name: model base path} for the layout found under base_dir."""
        if served_versions(self.base_dir):
            return {os.path.basename(os.path.normpath(self.base_dir)): self.base_dir}
        return {name: os.path.join(self.base_dir, name) for name in model_names(self.base_dir)}

    def refresh(self) -> None:
        """Loads any newer version; a version that fails to load leaves the old one serving."""
        for name, model_dir in self.model_dirs().items():
            newest = served_versions(model_dir)[-1]
            current = self._serving.get(name)
            if current and current.version >= newest:
                continue
            if self._states.get(name, {}).get(newest, VersionState(newest, "")).state == "END":
                continue  # failed before; retried only when a newer version appears
            self._set_state(name, VersionState(newest, "LOADING"))
            started = time.monotonic()
            try:
                servable = load(name, newest, os.path.join(model_dir, str(newest)))
                for request in warmup_requests(servable.path):
                    self._warmup(servable, request)
            except Exception as e:  # any load or warmup failure: keep serving the old version
                logging.exception("Loading %s version %d failed", name, newest)
                self._set_state(name, VersionState(newest, "END", f"{type(e).__name__}: {e}"))
                continue
            with self._lock:  # one step: GetModelStatus never disagrees with what answers requests
                self._serving[name] = servable
                states = self._states.setdefault(name, {})
                states[newest] = VersionState(newest, "AVAILABLE")
                if current:
                    states[current.version] = VersionState(current.version, "END")
            logging.info("Serving %s version %d from %s (loaded and warmed up in %.1f s)",
                         name, newest, servable.path, time.monotonic() - started)

    def _set_state(self, name: str, state: VersionState) -> None:
        with self._lock:
            self._states.setdefault(name, {})[state.version] = state

    def get(self, name: str, version: Optional[int] = None) -> Servable:
        with self._lock:
            servable = self._serving.get(name)
        if servable is None:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if version is not None and version != servable.version:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return servable

    def states(self, name: str, version: Optional[int] = None) -> List[VersionState]:
        with self._lock:
            states = dict(self._states.get(name, {}))
        if not states:
            raise NotFound(f"Could not find any versions of model {name}")
        if version is not None:
            if version not in states:
                raise NotFound(f"Could not find version {version} of model {name}")
            return [states[version]]
        return [states[v] for v in sorted(states, reverse=True)]

    def start(self, poll_seconds: float) -> None:
        """Loads what is there now, then keeps polling for new versions in the background."""
        self.refresh()

        def poll():
            while not self._stop.wait(poll_seconds):
                try:
                    self.refresh()
                except Exception:  # a broken folder must not kill the poller
                    logging.exception("Polling %s failed", self.base_dir)

        self._thread = threading.Thread(target=poll, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
