"""Remote paths (gs://, s3://) are never rewritten, and every path function works on a bucket.

The bucket is a real S3-compatible server on loopback (tests/object_store.py); gs:// paths are
checked as strings only (no GCS emulator reaches TensorFlow 2.16, see tests/object_store.py).
"""
import logging
import os
import pathlib
import re

import pytest

from components.pusher import executor as pusher
from ratings import paths
from ratings import features
from pipeline import configs
from serving import contract
from tests.object_store import objects
from tests.helpers import fake_saved_model, write_csv


def test_uri_joins_keep_the_scheme_where_pathlib_does_not():
    # The bug this replaces: pathlib (and os.path.normpath) collapse the scheme's "//".
    assert str(pathlib.Path("gs://bucket/serving") / "movierec") == "gs:/bucket/serving/movierec"
    assert paths.join("gs://bucket/serving", "movierec") == "gs://bucket/serving/movierec"
    assert paths.join("s3://bucket/", "a", "b") == "s3://bucket/a/b"
    assert paths.parent("gs://bucket/serving/movierec/") == "gs://bucket/serving"
    assert paths.name("gs://bucket/data/ratings.csv") == "ratings.csv"
    assert paths.absolute("gs://bucket/x") == "gs://bucket/x"
    assert paths.absolute("relative") == os.path.join(os.getcwd(), "relative")
    assert [paths.is_remote(p) for p in ("gs://b/x", "s3://b/x", "/srv/x", "runs/x")] == [True, True, False, False]


def test_settings_with_bucket_paths_keep_them_and_put_metadata_locally(tmp_path):
    config = configs.PipelineConfig(data="gs://bucket/spans", pipeline_root="gs://bucket/pipeline",
                                    serving_dir="gs://bucket/serving").absolute()
    assert (config.data, config.pipeline_root, config.serving_dir) == (
        "gs://bucket/spans", "gs://bucket/pipeline", "gs://bucket/serving")
    assert config.push_base == "gs://bucket/serving/movierec"
    with pytest.raises(ValueError, match="pipeline_root gs://bucket/pipeline is remote.*set metadata.path"):
        config.metadata_file
    local = config.replace(metadata=configs.MetadataConfig(path=str(tmp_path / "metadata.sqlite")))
    assert local.metadata_file == str(tmp_path / "metadata.sqlite")
    with pytest.raises(ValueError, match="must be on a local filesystem"):
        config.replace(metadata=configs.MetadataConfig(path="gs://bucket/metadata.sqlite")).metadata_file


def test_input_layout_and_side_tables_are_read_from_a_bucket(s3_bucket, tmp_path):
    local = tmp_path / "layout"
    write_csv(local / features.RATINGS_FILE, ",".join(features.RATINGS_COLUMNS), ["1,1,4,881250949", "2,3,5,881250950"])
    write_csv(local / features.MOVIES_FILE, ",".join(features.MOVIES_COLUMNS),
              ["1,Toy Story,1995,Animation|Children's|Comedy", '3,"Grumpier Old Men, The",1995,Comedy|Romance'])
    paths.register_filesystems(s3_bucket)
    data = paths.join(s3_bucket, "layout")
    for name in (features.RATINGS_FILE, features.MOVIES_FILE):
        paths.write_bytes(paths.join(data, name), (local / name).read_bytes())
    config = configs.PipelineConfig(data=data)
    assert config.input_location() == (data, {configs.SINGLE_SPLIT: configs.RATINGS_FILE_PATTERN})
    assert config.replace(data=paths.join(data, features.RATINGS_FILE)).input_location() == (
        data, {configs.SINGLE_SPLIT: features.RATINGS_FILE})
    assert config.side_tables() == (paths.join(data, features.MOVIES_FILE), None)
    from ratings import side_tables
    movies = side_tables.read_movies(paths.join(data, features.MOVIES_FILE))
    assert len(movies) == 2


@pytest.fixture
def server_requests():
    """The S3 server's own request log (werkzeug's, one line per request), in order."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    server_log = logging.getLogger("werkzeug")
    level = server_log.level
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    yield lines
    server_log.removeHandler(handler)
    server_log.setLevel(level)


def test_a_push_to_a_bucket_writes_the_graph_last_and_leaves_no_staging(s3_bucket, tmp_path, server_requests):
    """No folder rename on object stores: the version is copied from staging with saved_model.pb
    last, so until the copy is complete TF Serving finds no graph to load (pusher docstring)."""
    paths.register_filesystems(s3_bucket)
    base = paths.join(s3_bucket, "push", "movierec")
    fake_saved_model(str(tmp_path / "model"), b"A", variables_size=1000)
    version = pusher.publish(str(tmp_path / "model"), base)
    assert contract.served_versions(base) == [version]
    assert objects(base) == [f"push/movierec/{version}/{name}" for name in
                             (pusher.FINGERPRINT_FILE, "saved_model.pb", "variables/variables.data-00000-of-00001")]
    writes = [m.group(1) for line in server_requests
              if (m := re.search(rf'"PUT /[^/]+/push/movierec/{version}/(\S+) HTTP', line))]
    assert sorted(writes) == sorted([pusher.FINGERPRINT_FILE, "variables/variables.data-00000-of-00001",
                                     "saved_model.pb"])
    assert writes[-1] == "saved_model.pb"
    assert pusher.version_serving(base, str(tmp_path / "model")) == version


def test_a_remote_version_without_its_graph_is_not_served(s3_bucket, tmp_path):
    """What a push killed mid-copy leaves: the same fingerprint, no saved_model.pb. It does not
    count as serving the model, so the next push publishes it again, complete."""
    paths.register_filesystems(s3_bucket)
    base = paths.join(s3_bucket, "killed", "movierec")
    fake_saved_model(str(tmp_path / "model"), b"A")
    paths.write_bytes(paths.join(base, "7", pusher.FINGERPRINT_FILE), b"A")
    assert contract.served_versions(base) == [7]
    assert pusher.version_serving(base, str(tmp_path / "model")) is None
    version = pusher.publish(str(tmp_path / "model"), base)
    assert version > 7 and pusher.version_serving(base, str(tmp_path / "model")) == version
