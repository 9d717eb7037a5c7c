"""Publishing versions: atomic, increasing, never the same SavedModel twice; a failed push
publishes nothing and leaves nothing behind."""
import contextlib
import os
import resource
import signal
import socket
import subprocess
import uuid

import pytest
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.utils import path_utils

from components.pusher import executor as pusher
from serving import contract
from pipeline import configs, run_summary
from tests.helpers import fake_saved_model, push_pipeline


def test_publish_versions_increase_and_leave_no_staging(tmp_path):
    base = str(tmp_path / "serving" / "movierec")
    fake_saved_model(str(tmp_path / "a"), b"A")
    fake_saved_model(str(tmp_path / "b"), b"B")
    first = pusher.publish(str(tmp_path / "a"), base)
    second = pusher.publish(str(tmp_path / "b"), base)
    assert second > first
    assert contract.served_versions(base) == [first, second]
    assert sorted(os.listdir(base)) == sorted([str(first), str(second)])  # no staging folder left
    assert sorted(os.listdir(os.path.join(base, str(second)))) == [
        pusher.FINGERPRINT_FILE, "saved_model.pb", "variables"]


def test_version_serving_finds_an_identical_model(tmp_path):
    base = str(tmp_path / "serving")
    fake_saved_model(str(tmp_path / "a"), b"A")
    fake_saved_model(str(tmp_path / "b"), b"B")
    assert pusher.version_serving(base, str(tmp_path / "a")) is None
    version = pusher.publish(str(tmp_path / "a"), base)
    assert pusher.version_serving(base, str(tmp_path / "a")) == version
    assert pusher.version_serving(base, str(tmp_path / "b")) is None


def test_staging_folders_are_not_versions(tmp_path):
    base = tmp_path / "serving"
    (base / f"{pusher.STAGING_PREFIX}123-abc").mkdir(parents=True)
    (base / "17").mkdir()
    assert contract.served_versions(str(base)) == [17]


def test_staging_left_by_a_dead_push_is_removed_by_the_next(tmp_path):
    """A push killed mid-copy leaves its staging folder; the next push from this machine removes it,
    but not the staging folder of a push still running."""
    base = tmp_path / "serving"
    dead = subprocess.Popen(["true"])
    dead.wait()
    staging = lambda pid: base / f"{pusher.STAGING_PREFIX}1-{socket.gethostname()}-{pid}-{uuid.uuid4().hex}"
    dead_push, live_push = staging(dead.pid), staging(os.getpid())
    fake_saved_model(str(dead_push), b"partial")
    fake_saved_model(str(live_push), b"partial")
    fake_saved_model(str(tmp_path / "a"), b"A")
    version = pusher.publish(str(tmp_path / "a"), str(base))
    assert sorted(os.listdir(base)) == sorted([str(version), live_push.name])


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Files this process writes cannot grow past `limit` bytes: the kernel fails the write (EFBIG,
    as a full disk fails it with ENOSPC), whoever the user. SIGXFSZ is ignored so the process lives."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_push_that_cannot_write_fails_and_keeps_the_served_version(tmp_path):
    """A write failing mid-copy (a real one, from the kernel) fails the Pusher in ML Metadata with one
    line naming the folder; the version served before stays the newest, and no staging is left."""
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"), serving_dir=str(tmp_path / "serving"))
    fake_saved_model(str(tmp_path / "served"), b"A")
    served = pusher.publish(str(tmp_path / "served"), config.push_base)
    fake_saved_model(path_utils.serving_model_dir(str(tmp_path / "model")), b"B", variables_size=4 << 20)
    with file_size_limit(1 << 20), pytest.raises(pusher.PushError) as failure:
        LocalDagRunner().run(push_pipeline(config, str(tmp_path / "model")))
    assert str(failure.value).startswith(f"{config.push_base}: push failed, served versions unchanged (")
    assert str(failure.value).endswith("; File too large)")
    assert os.listdir(config.push_base) == [str(served)]
    assert pusher.version_serving(config.push_base, str(tmp_path / "served")) == served
    summary = run_summary.summarize(config)
    assert summary.components["Pusher"] == "failed" and summary.pushed is None
