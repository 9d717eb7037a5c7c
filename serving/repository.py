"""The models a server serves, loaded by the rules of TF Serving's ServerCore.

Which models: a ModelServerConfig (models.config, re-read on --model_config_file_poll_wait_seconds).
Which versions: each model's version policy over its version folders (serving/model_config.py),
re-scanned every --file_system_poll_wait_seconds. How: AvailabilityPreservingPolicy - a new
version is loaded (and warmed up: a failing warmup record fails the load) beside the ones being
served, and a version no longer aspired is unloaded only once an aspired one is available, so a
broken push never takes a model down. A version whose load failed is END with the error in its
status and never serves. At startup the server waits until every model's latest version is
AVAILABLE and fails to start if one ends in error (server_core.cc WaitUntilModelsAvailable).
"""
import dataclasses
import logging
import threading
import time
from typing import Callable, Dict, List, Optional

import grpc
from tensorflow_serving.config import model_server_config_pb2

from serving import model_config
from serving.status import ServingError, invalid_argument, not_found


@dataclasses.dataclass
class VersionState:
    version: int
    state: str  # LOADING, AVAILABLE, UNLOADING, END (TF Serving's ModelVersionStatus.State)
    error: Optional[ServingError] = None


class ModelRepository:
    def __init__(self, config: model_server_config_pb2.ModelServerConfig,
                 load: Callable[[str, int, str], object], unload: Callable[[object], None],
                 max_num_load_retries: int = 5, load_retry_interval_s: float = 60.0):
        self._load, self._unload = load, unload
        self._retries, self._retry_interval_s = max_num_load_retries, load_retry_interval_s
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._models: Dict[str, model_server_config_pb2.ModelConfig] = {}
        self._serving: Dict[str, Dict[int, object]] = {}
        self._states: Dict[str, Dict[int, VersionState]] = {}
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self.set_config(config)

    def set_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """The models to serve from now on; models left out are unloaded at the next refresh."""
        models = {model.name: model for model in config.model_config_list.config}
        with self._lock:
            self._models = models

    # --- loading ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        with self._refresh_lock:
            with self._lock:
                models = dict(self._models)
                removed = [name for name in self._serving if name not in models]
            for name in removed:
                for version in list(self._serving.get(name, {})):
                    self._unload_version(name, version)
            for name, model in models.items():
                self._refresh_model(model)

    def _refresh_model(self, model) -> None:
        name, aspired = model.name, model_config.aspired_versions(model)
        known = self._states.get(name, {})
        for version in sorted(aspired):
            if version not in known:  # a failed version is not retried until it is pushed again
                self._load_version(name, version, aspired[version])
        serving = self._serving.get(name, {})
        if any(v in serving for v in aspired) or not aspired:
            for version in [v for v in serving if v not in aspired]:
                self._unload_version(name, version)

    def _load_version(self, name: str, version: int, path: str) -> None:
        self._set_state(name, VersionState(version, "LOADING"))
        started = time.monotonic()
        for attempt in range(self._retries + 1):
            try:
                servable = self._load(name, version, path)
                break
            except Exception as e:  # any load or warmup failure
                error = e if isinstance(e, ServingError) else ServingError(
                    grpc.StatusCode.UNKNOWN, f"{type(e).__name__}: {e}")
                logging.error("Loading servable: {name: %s version: %d} failed: %s: %s (attempt %d of %d)",
                              name, version, error.code_name, error.message, attempt + 1, self._retries + 1)
                if attempt == self._retries or self._stop.wait(self._retry_interval_s):
                    self._set_state(name, VersionState(version, "END", error))
                    return
        with self._lock:  # one step: status never disagrees with what answers requests
            self._serving.setdefault(name, {})[version] = servable
            self._states.setdefault(name, {})[version] = VersionState(version, "AVAILABLE")
        logging.info("Successfully loaded servable version {name: %s version: %d} from %s in %.1f s",
                     name, version, path, time.monotonic() - started)

    def _unload_version(self, name: str, version: int) -> None:
        with self._lock:
            servable = self._serving.get(name, {}).pop(version, None)
            if not self._serving.get(name):
                self._serving.pop(name, None)
            self._states.setdefault(name, {})[version] = VersionState(version, "END")
        if servable is not None:
            self._unload(servable)
            logging.info("Unloaded servable version {name: %s version: %d}", name, version)

    def _set_state(self, name: str, state: VersionState) -> None:
        with self._lock:
            self._states.setdefault(name, {})[state.version] = state

    # --- lookups ----------------------------------------------------------------------------------

    def get(self, name: str, version: Optional[int] = None, label: str = ""):
        """The servable a ModelSpec asks for (ServerCore::GetServableHandle's rules and messages)."""
        with self._lock:
            if label:
                labels = self._models[name].version_labels if name in self._models else {}
                if label not in labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = labels[label]
            versions = self._serving.get(name, {})
            if version is None:
                if versions:
                    return versions[max(versions)]
                raise not_found(f"Servable not found for request: Latest({name})")
            if version in versions:
                return versions[version]
        raise not_found(f"Servable not found for request: Specific({name}, {version})")

    def states(self, name: str, version: Optional[int] = None) -> List[VersionState]:
        """get_model_status_impl.cc: every version the server knows of, newest first."""
        with self._lock:
            states = dict(self._states.get(name, {}))
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            return [states[version]]
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        return [states[v] for v in sorted(states, reverse=True)]

    def unavailable_models(self) -> Dict[str, Optional[VersionState]]:
        """Models whose latest aspired version is not AVAILABLE: its state, or None if not tried yet."""
        with self._lock:
            models = dict(self._models)
            states = {name: dict(self._states.get(name, {})) for name in models}
        waiting = {}
        for name, model in models.items():
            aspired = model_config.aspired_versions(model)
            state = states[name].get(max(aspired)) if aspired else None
            if state is None or state.state != "AVAILABLE":
                waiting[name] = state
        return waiting

    # --- background -------------------------------------------------------------------------------

    def wait_until_available(self) -> None:
        """Blocks until every model's latest version is AVAILABLE (a model with no versions yet is
        waited for); raises if one of them failed, with server_core.cc's message."""
        while not self._stop.is_set():
            self.refresh()
            waiting = self.unavailable_models()
            failed = {name: s for name, s in waiting.items() if s is not None and s.state == "END"}
            if failed:
                raise RuntimeError(f"{len(failed)} model(s) did not become available: {{" + "".join(
                    f"{{{{name: {name} version: {s.version}}} due to error: {s.error.code_name}: {s.error.message}}}, "
                    for name, s in sorted(failed.items())) + "}")
            if not waiting:
                return
            for name in waiting:
                logging.warning("No versions of servable %s available yet; waiting", name)
            self._stop.wait(1.0)

    def start_polling(self, file_system_poll_s: float, config_path: Optional[str] = None,
                      config_poll_s: float = 0) -> None:
        def every(seconds: float, step: Callable[[], None], what: str):
            def loop():
                while not self._stop.wait(seconds):
                    try:
                        step()
                    except Exception as e:  # a broken folder or config must not stop the poller
                        logging.error("%s failed: %s", what, e)
            thread = threading.Thread(target=loop, name=what, daemon=True)
            thread.start()
            self._threads.append(thread)

        if file_system_poll_s > 0:
            every(file_system_poll_s, self.refresh, "file-system-poll")
        if config_path and config_poll_s > 0:
            every(config_poll_s, lambda: self.set_config(model_config.read_model_server_config(config_path)),
                  "model-config-poll")

    def interrupt(self) -> None:
        """Ends waiting, polling and load retries (safe from a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            servables = [s for versions in self._serving.values() for s in versions.values()]
            self._serving.clear()
        for servable in servables:
            self._unload(servable)
