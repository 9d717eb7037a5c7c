"""The whole pipeline with data, pipeline root and serving dir in an object-store bucket.

The bucket is on a real S3-compatible server on loopback (tests/object_store.py says why S3);
TensorFlow, TFX's fileio and Beam all read and write it as they would a cloud bucket. ML Metadata
stays in a local SQLite file (metadata.path): SQLite cannot live in a bucket.
"""
import pytest

from ratings import features
from ratings import paths
from pipeline import configs, run_summary
from serving import contract
from tests.cli import movierec
from tests.object_store import objects
from tests.pipeline_runs import SMALL_RUN_CONFIG


@pytest.fixture(scope="module")
def bucket_run(s3_bucket, ratings_sample, tmp_path_factory):
    """(settings, run) where run() is `movierec run` on the sample uploaded to the bucket."""
    paths.register_filesystems(s3_bucket)
    data = paths.join(s3_bucket, "data")
    for name in (features.RATINGS_FILE, features.MOVIES_FILE, features.USERS_FILE):
        paths.write_bytes(paths.join(data, name), (ratings_sample.parent / name).read_bytes())
    local = tmp_path_factory.mktemp("bucket-run")
    settings = local / "settings.yaml"
    settings.write_text(SMALL_RUN_CONFIG + f"metadata: {{path: {local / 'metadata.sqlite'}}}\n")
    config = configs.load(settings).replace(data=data, pipeline_root=paths.join(s3_bucket, "pipeline"),
                                            serving_dir=paths.join(s3_bucket, "serving"))
    run = lambda: movierec("run", "--config", settings, "--data", config.data, "--pipeline-root",
                           config.pipeline_root, "--serving-dir", config.serving_dir)
    return config, run


@pytest.mark.timeout(1800)  # two runs; each takes ~6 min on 2 shared cores (README)
def test_pipeline_runs_with_everything_in_a_bucket_and_reruns_from_cache(bucket_run):
    config, run = bucket_run
    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    summary = run_summary.summarize(config)
    assert summary.pushed, summary.push_note
    version = contract.served_versions(config.push_base)[-1]
    assert summary.pushed_version == str(version)
    # The version as the server lists it: the whole SavedModel, and no staging folder left.
    keys = objects(config.push_base)
    prefix = f"serving/{config.model_name}/"
    assert {key[len(prefix):].split("/")[0] for key in keys} == {str(version)}
    assert f"{prefix}{version}/saved_model.pb" in keys
    assert any(key.startswith(f"{prefix}{version}/variables/variables.data") for key in keys)
    assert f"{prefix}{version}/assets.extra/tf_serving_warmup_requests" in keys
    # Deploy files beside the versions, artifacts, report and the run's log in the bucket too.
    assert "serving/models.config" in objects(config.serving_dir)
    pipeline_keys = objects(config.pipeline_root)
    assert any(key.startswith("pipeline/Trainer/model/") for key in pipeline_keys)
    assert any(key.startswith("pipeline/reports/") and key.endswith("/report.html") for key in pipeline_keys)
    assert any(key.startswith("pipeline/logs/run-") for key in pipeline_keys)

    again = run()
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = run_summary.summarize(config)
    assert rerun.run_id != summary.run_id
    assert {rerun.components[name] for name in ("RatingsExampleGen", "Transform", "Trainer")} == {"cached"}
    # In a bucket the Evaluator and what follows it run again: TFX's Evaluator leaves its blessing folder
    # empty when no thresholds are set (ours are in the gates), a bucket has no empty folders, and TFX
    # reuses a cached execution only if its outputs exist (cache_utils.get_cached_outputs ->
    # artifact_utils.verify_artifacts). The Pusher then finds the model served and pushes nothing.
    assert rerun.components["Evaluator"] == "ran"
    assert rerun.push_note == f"not pushed: this model is already served as version {version}"
    assert contract.served_versions(config.push_base) == [version]


def test_run_checks_data_in_a_bucket_before_the_pipeline_starts(s3_bucket, tmp_path):
    paths.register_filesystems(s3_bucket)
    data = paths.join(s3_bucket, "bad-header", features.RATINGS_FILE)
    paths.write_bytes(data, b"user,movie,stars,when\n1,2,3,880000000\n")
    result = movierec("run", "--data", data, "--pipeline-root", tmp_path / "p", "--serving-dir",
                      paths.join(s3_bucket, "bad-header-serving"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"Error: {data}:1:")
    assert not (tmp_path / "p" / configs.METADATA_FILE).exists()
