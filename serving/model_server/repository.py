"""The models a server serves, loaded by the rules of TF Serving's ServerCore.

Which models: a ModelServerConfig (models.config, re-read on --model_config_file_poll_wait_seconds).
Which versions: each model's version policy over its version folders (serving/model_server/model_config.py),
re-read every --file_system_poll_wait_seconds by one poll of every model, as
sources/storage_path/file_system_storage_path_source.cc PollFileSystemForConfig does: a base path
that is missing or cannot be listed fails the whole poll and changes nothing (a storage blip never
unloads a model), while one that lists no version folder aspires no version. How, as
core/aspired_versions_manager.cc manages them: each version the poll finds is *aspired*; a version
that is neither aspired nor loaded is forgotten (FlushServables), so a version that comes back, or a
model put back into models.config, is loaded again; AvailabilityPreservingPolicy loads the newest
new aspired version and unloads a version no longer aspired once an aspired one is available (or
none is aspired), so a broken push never takes a model down. A version whose load failed is END
with the error in its status and is not retried while it stays aspired. At startup the server
waits until every model's latest version is AVAILABLE and fails to start if one ends in error
(server_core.cc WaitUntilModelsAvailable).
"""
import contextlib
import dataclasses
import gc
import logging
import threading
import time
from typing import Callable, Dict, List, Optional

import grpc
from tensorflow_serving.config import model_server_config_pb2

from serving.model_server import model_config
from serving.model_server.status import ServingError, invalid_argument, not_found


@dataclasses.dataclass
class VersionState:
    version: int
    state: str  # LOADING, AVAILABLE, UNLOADING, END (TF Serving's ModelVersionStatus.State)
    error: Optional[ServingError] = None


@dataclasses.dataclass
class _Managed:
    """A version the manager holds (LoaderHarness with AspiredVersionsManager's `is_aspired`)."""
    path: str
    aspired: bool = True
    started: bool = False  # a load was started (the harness left kNew)


def settle_heap() -> None:
    """Collects, then freezes what is alive (gc.freeze): the loaded models' objects leave the cyclic
    collector's walk. A full collection otherwise walks every object of TensorFlow and of each loaded
    graph (~330k for `make run`'s model) and stalls the request it catches for 75-160 ms, every few
    seconds under load; tensorflow_model_server has no such pause. Unfreezing first lets that one
    collection reclaim what was frozen and has since been let go (an unloaded version's graph), so
    frozen garbage never outlives the next change. Costs one full collection per load or unload."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelRepository:
    """The models served and their versions' states (the module's docstring: TF Serving's rules).

    `on_change` runs after each version loaded or unloaded, once the repository holds no reference to
    an unloaded one: the server passes `settle_heap`; a test or tool that embeds a repository in its own
    process keeps its heap as it is (the default)."""

    def __init__(self, config: model_server_config_pb2.ModelServerConfig,
                 load: Callable[[str, int, str], object], unload: Callable[[object], None],
                 max_num_load_retries: int = 5, load_retry_interval_s: float = 60.0,
                 on_change: Callable[[], None] = lambda: None):
        self._load, self._unload, self._on_change = load, unload, on_change
        self._retries, self._retry_interval_s = max_num_load_retries, load_retry_interval_s
        self._lock = threading.Lock()
        # Requests holding each servable (by id), as TF Serving's ServableHandles do: a version
        # leaves the serving map at once but is unloaded only when the last one is released.
        self._handles: Dict[int, int] = {}
        self._released = threading.Condition(self._lock)
        self._refresh_lock = threading.Lock()
        self._models: Dict[str, model_server_config_pb2.ModelConfig] = {}
        self._serving: Dict[str, Dict[int, object]] = {}
        self._states: Dict[str, Dict[int, VersionState]] = {}  # every version ever seen (the status)
        self._managed: Dict[str, Dict[int, _Managed]] = {}
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
        """One round of the file-system poll and of the manager: forget versions neither aspired nor
        loaded, take the poll's aspired versions, then load and unload as the policy says."""
        with self._refresh_lock:
            with self._lock:
                models = dict(self._models)
                for name, versions in self._managed.items():
                    self._flush(name, versions)
            polled = self._poll(models)
            for name in [name for name in self._managed if name not in models]:
                self._aspire(name, {})  # UpdateConfig -> UnaspireServables, whatever the poll found
            for name, aspired in (polled or {}).items():
                self._aspire(name, aspired)
            for name in list(self._managed):
                self._apply_policy(name)

    @staticmethod
    def _poll(models) -> Optional[Dict[str, Dict[int, str]]]:
        """{model: {version: path}} the version policies aspire, or None if a base path could not be
        listed: PollFileSystemForConfig stops at the first failing model and emits nothing."""
        try:
            return {name: model_config.aspired_versions(model) for name, model in models.items()}
        except OSError as e:
            logging.error("FileSystemStoragePathSource encountered a filesystem access error: %s", e)
            return None

    def _flush(self, name: str, versions: Dict[int, _Managed]) -> None:
        """aspired_versions_manager.cc FlushServables: versions not aspired that are not loaded
        (unloaded, failed, or never started) leave the manager; their last state stays in the status."""
        serving = self._serving.get(name, {})
        for version in [v for v, m in versions.items() if not m.aspired and v not in serving]:
            del versions[version]

    def _aspire(self, name: str, aspired: Dict[int, str]) -> None:
        """ProcessAspiredVersionsRequest: versions left out are no longer aspired, new ones are added.
        A request that aspires again a version still held unaspired waits for a later round
        (HandlePendingAspiredVersionsRequests / ContainsAnyReaspiredVersions)."""
        with self._lock:
            versions = self._managed.setdefault(name, {})
            if any(v in versions and not versions[v].aspired for v in aspired):
                logging.info("Postponing the aspired versions of %s: version(s) %s are still being unloaded",
                             name, sorted(v for v in aspired if v in versions and not versions[v].aspired))
                return
            for version, managed in versions.items():
                managed.aspired = version in aspired
            for version, path in aspired.items():
                versions.setdefault(version, _Managed(path))

    def _apply_policy(self, name: str) -> None:
        """availability_preserving_policy.cc GetNextAction, until it has nothing left to do: unload the
        lowest unaspired loaded version if no version is aspired, an aspired one is loaded, or more than
        one unaspired one is loaded; otherwise load the newest aspired version not tried yet."""
        while not self._stop.is_set():
            with self._lock:
                versions = dict(self._managed.get(name, {}))
                serving = set(self._serving.get(name, {}))
            aspired = [v for v, m in versions.items() if m.aspired]
            unaspired_serving = sorted(v for v, m in versions.items() if not m.aspired and v in serving)
            if unaspired_serving and (not aspired or any(v in serving for v in aspired)
                                      or len(unaspired_serving) > 1):
                self._unload_version(name, unaspired_serving[0])
                continue
            new = [v for v in aspired if not versions[v].started]
            if not new:
                return
            versions[max(new)].started = True
            self._load_version(name, max(new), versions[max(new)].path)

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
        del servable
        self._on_change()

    def _unload_version(self, name: str, version: int) -> None:
        with self._lock:
            servable = self._serving.get(name, {}).pop(version, None)
            if not self._serving.get(name):
                self._serving.pop(name, None)
            self._states.setdefault(name, {})[version] = VersionState(version, "END")
            if servable is not None:  # requests already running on it finish first
                self._released.wait_for(lambda: not self._handles.get(id(servable)))
        if servable is not None:
            self._unload(servable)
            del servable
            logging.info("Unloaded servable version {name: %s version: %d}", name, version)
            self._on_change()

    def _set_state(self, name: str, state: VersionState) -> None:
        with self._lock:
            self._states.setdefault(name, {})[state.version] = state

    # --- lookups ----------------------------------------------------------------------------------

    def get(self, name: str, version: Optional[int] = None, label: str = ""):
        """The servable a ModelSpec asks for (ServerCore::GetServableHandle's rules and messages)."""
        with self._lock:
            return self._find(name, version, label)

    @contextlib.contextmanager
    def handle(self, name: str, version: Optional[int] = None, label: str = ""):
        """The servable, held while the caller runs on it: a version that stops being served
        meanwhile (a newer one loaded) is unloaded after the request, not under it, as a
        ServableHandle keeps its servable alive (core/basic_manager.h: a servable is unloaded once
        no handle to it is held)."""
        with self._lock:
            servable = self._find(name, version, label)
            self._handles[id(servable)] = self._handles.get(id(servable), 0) + 1
        try:
            yield servable
        finally:
            with self._lock:
                self._handles[id(servable)] -= 1
                if not self._handles[id(servable)]:
                    del self._handles[id(servable)]
                    self._released.notify_all()

    def _find(self, name: str, version: Optional[int], label: str):
        """get's lookup; the caller holds the lock."""
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
            aspired = {name: [v for v, m in self._managed.get(name, {}).items() if m.aspired] for name in self._models}
            states = {name: dict(self._states.get(name, {})) for name in self._models}
        waiting = {}
        for name, versions in aspired.items():
            state = states[name].get(max(versions)) if versions else None
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
