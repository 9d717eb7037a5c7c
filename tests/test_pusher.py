"""Publishing versions: atomic, increasing, and never the same SavedModel twice."""
import os

from components import pusher


def fake_saved_model(path, fingerprint: bytes):
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"graph")
    with open(os.path.join(path, pusher.FINGERPRINT_FILE), "wb") as f:
        f.write(fingerprint)


def test_publish_versions_increase_and_leave_no_staging(tmp_path):
    base = str(tmp_path / "serving" / "movierec")
    fake_saved_model(str(tmp_path / "a"), b"A")
    fake_saved_model(str(tmp_path / "b"), b"B")
    first = pusher.publish(str(tmp_path / "a"), base)
    second = pusher.publish(str(tmp_path / "b"), base)
    assert second > first
    assert pusher.served_versions(base) == [first, second]
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
    assert pusher.served_versions(str(base)) == [17]
