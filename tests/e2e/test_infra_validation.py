"""Infra validation: a candidate TF Serving could not serve is refused and never pushed.

The candidates are small hand-built SavedModels (tests/tfs_models.py), served by the model server
infra validation picks (`movierec serve` here: no tensorflow_model_server on this machine) with
the production deploy files and flags: batching and warmup on.
"""
import os
import shutil

import pytest
from tfx import v1 as tfx
from tfx.utils import path_utils

from components.infra_validator import executor
from serving import deploy
from pipeline import configs, run_summary
from serving import contract
from tests import tfs_models
from tests.helpers import push_pipeline


def test_a_model_with_a_scalar_input_is_refused_and_not_pushed(tmp_path):
    """Its warmup request sends a rank-0 `k`: with batching on, TF Serving refuses it
    (batching/batching_util.h `ComputeTensorBatchSize`), a failing warmup record fails the load
    (servables/tensorflow/saved_model_warmup_util.cc `RunSavedModelWarmup`), and the server
    does not start. The run's Pusher then pushes nothing and says why."""
    config = configs.PipelineConfig(pipeline_root=str(tmp_path / "pipeline"), serving_dir=str(tmp_path / "serving"))
    tfs_models.save(path_utils.serving_model_dir(str(tmp_path / "model")), tfs_models.SCALAR_WARMUP)
    tfx.orchestration.LocalDagRunner().run(push_pipeline(config, str(tmp_path / "model"), infra_validation=True))
    summary = run_summary.summarize(config)
    assert summary.infra_blessed is False
    assert "movierec serve exited with code 255: Failed to start server." in summary.infra_note
    assert "Batching Run() input tensors must have at least one dimension" in summary.infra_note
    assert summary.pushed is False and summary.push_note.startswith("not pushed: TF Serving could not serve it (")
    assert contract.served_versions(config.push_base) == [] and not os.path.exists(
        os.path.join(config.serving_dir, deploy.MODELS_CONFIG))
    assert "infra validation: failed - movierec serve exited" in summary.render()
    assert summary.outcome() == (3, f"Not pushed: TF Serving could not serve the model: {summary.infra_note}")


def test_a_model_that_loads_but_fails_a_canary_is_refused(tmp_path):
    """The model loads and warms up, but its signatures are not the serving contract's: the first
    canary request (one per client signature) names the signature and TF Serving's answer."""
    model_dir = tfs_models.save(str(tmp_path / "model"), tfs_models.GOOD_WARMUP)
    with pytest.raises(executor.InfraValidationFailed) as failure:
        executor.validate(model_dir, "movierec", "", 120, str(tmp_path / "work"))
    assert str(failure.value).startswith("canary request to 'serving_default' failed: INVALID_ARGUMENT: ")


def test_the_model_server_is_the_real_one_when_configured(tmp_path):
    """A configured tensorflow_model_server is started with production's flags (and no load
    retries); without one, `movierec serve` takes the same flags."""
    name, argv = executor.server_command("/opt/tfs/tensorflow_model_server", "/cfg", 1, 2)
    assert name == argv[0] == "/opt/tfs/tensorflow_model_server"
    assert argv[1:] == [*deploy.server_args("/cfg", 1, 2), "--max_num_load_retries=0"]
    name, argv = executor.server_command("", "/cfg", 1, 2)
    if not shutil.which(executor.SERVER_BINARY):
        assert name == "movierec serve" and argv[1:4] == ["-m", "movierec.cli", "serve"]
    assert argv[-len(deploy.server_args("/cfg", 1, 2)) - 1:] == [*deploy.server_args("/cfg", 1, 2),
                                                                 "--max_num_load_retries=0"]
