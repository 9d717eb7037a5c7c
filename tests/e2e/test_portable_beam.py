"""The pipeline's Beam work on Beam's portable runner: jobs submitted through the job API to a job
service on this machine, run by SDK workers in processes of their own that a worker pool starts,
each installing the `--setup_file` sdist it was sent, as Flink, Spark and Dataflow workers do.
Nothing is shared with the launching process but files and gRPC: a component that relied on
in-process state, or shipped something that does not pickle, fails here."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import portpicker
import pytest
import yaml

from pipeline import configs
from tests.beam_sdk_boot import RECORD_FILE, WORKFLOW_FILE
from tests.helpers import REPO
from tests.pipeline_runs import SMALL_RUN_CONFIG, PipelineRun

BEAM_COMPONENTS = ("RatingsExampleGen", "StatisticsGen", "Transform", "Evaluator")


def _wait_for_port(port: int, process: subprocess.Popen, log: pathlib.Path) -> None:
    deadline = time.monotonic() + 300
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


class BeamServices:
    """Beam's local job service and an SDK worker pool whose workers boot through
    tests/beam_sdk_boot.py. Both start with a bare environment (no PYTHONPATH, so no view of this
    checkout; none of our settings), as a cluster's processes would."""

    def __init__(self, folder: pathlib.Path):
        self.folder, self.boot_dir = folder, folder / "boot"
        self.boot_dir.mkdir(parents=True)
        self.job_port, self.pool_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
        boot = folder / "boot.sh"  # the pool runs one executable, with no arguments of ours
        boot.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests' / 'beam_sdk_boot.py'} \"$@\"\n")
        boot.chmod(0o755)
        env = {"PATH": f"{pathlib.Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(folder),
               "BEAM_BOOT_DIR": str(self.boot_dir)}
        self.job_service = self._start("job-service", env, "apache_beam.runners.portability.local_job_service_main",
                                       f"--port={self.job_port}", f"--staging_dir={folder / 'staging'}")
        self.pool = self._start("worker-pool", env, "apache_beam.runners.worker.worker_pool_main",
                                f"--service_port={self.pool_port}", f"--container_executable={boot}")
        _wait_for_port(self.job_port, self.job_service, folder / "job-service.log")
        _wait_for_port(self.pool_port, self.pool, folder / "worker-pool.log")

    def _start(self, name: str, env, module: str, *args) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "w") as log:
            # A session of its own, so stop() can end the process and the workers it started at once.
            return subprocess.Popen([sys.executable, "-m", module, *args], env=env, cwd=self.folder,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def beam_args(self):
        """configs/beam/portable.yaml, pointed at these services' ports."""
        args = configs.load(REPO / "configs" / "beam" / "portable.yaml").beam_pipeline_args
        return [arg.replace("localhost:8099", f"localhost:{self.job_port}")
                .replace("localhost:50000", f"localhost:{self.pool_port}") for arg in args]

    def workers(self):
        path = self.boot_dir / RECORD_FILE
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        # The pool stops its workers at exit (atexit), which SIGINT lets run and SIGTERM would not.
        self.pool.send_signal(signal.SIGINT)
        self.job_service.terminate()
        for process in (self.pool, self.job_service):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                # The pool's exit waits for its workers, and a worker can hang in TensorFlow's
                # interpreter shutdown (CI: still alive 15 min after SIGINT): end them all.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def beam_services(tmp_path):
    services = BeamServices(tmp_path / "beam")
    yield services
    services.stop()


def test_pipeline_on_beams_portable_runner(beam_services, ratings_sample, tmp_path):
    run = PipelineRun(tmp_path / "run", ratings_sample)
    run.config_file.write_text(SMALL_RUN_CONFIG + yaml.safe_dump({"beam_pipeline_args": beam_services.beam_args()}))
    result = run()
    assert result.returncode == 0, result.stderr[-3000:]
    summary = run.summary()
    assert summary.blessed and len(run.versions()) == 1
    assert {summary.components[c] for c in BEAM_COMPONENTS} == {"ran"}

    workers = beam_services.workers()
    # One or more workers per Beam job (ExampleGen, StatisticsGen, Transform's analysis, the
    # Evaluator), each a process the pool started, none of them the job service or this test.
    assert len(workers) >= len(BEAM_COMPONENTS), workers
    for worker in workers:
        assert worker["ppid"] == beam_services.pool.pid and worker["pid"] not in (
            os.getpid(), beam_services.job_service.pid, beam_services.pool.pid), worker
        # The sdist Beam built from --setup_file reached the worker, which imports our packages
        # from its own install of it.
        assert WORKFLOW_FILE in worker["staged"], worker
        assert worker["components"].startswith(worker["site"] + "/"), worker
