"""Running the pipeline through the real `movierec run` command, in a temp dir per run."""
import pathlib

from serving import contract
from pipeline import configs, run_summary
from tests.cli import movierec

# A small sample trains a rough model: the bound only has to be met, not be tight. Its lists are
# little better than random (NDCG@10 ~0.02 vs ~0.007), so the ranking gate is open here; it has
# its own tests (test_ranking_gate.py).
SMALL_RUN_CONFIG = """
hyperparameters: {epochs: 3, embedding_dim: 8}
evaluation: {rmse_upper_bound: 1.6, ndcg_lower_bound: 0.0, max_ndcg_decrease: 1.0}
"""


class PipelineRun:
    """One `movierec run` invocation with its own pipeline root and serving dir."""

    def __init__(self, root: pathlib.Path, data: pathlib.Path, *extra):
        self.root, self.data, self.extra = root, data, extra
        self.config_file = root / "config.yaml"
        root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(SMALL_RUN_CONFIG)
        self.config = configs.load(self.config_file).replace(
            data=str(data), pipeline_root=str(root / "pipeline"), serving_dir=str(root / "serving"))

    def __call__(self):
        return movierec("run", "--data", self.data, "--config", self.config_file,
                        "--pipeline-root", self.config.pipeline_root,
                        "--serving-dir", self.config.serving_dir, *self.extra)

    def versions(self):
        return contract.served_versions(self.config.push_base)

    def summary(self) -> run_summary.RunSummary:
        return run_summary.summarize(self.config)
