"""RatingGate executor: TFMA's RMSE per slice and model, judged (see component.py)."""
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import evaluation, verdicts

GATE = "rating"
EVALUATION = "evaluation"
RMSE_UPPER_BOUND, MAX_RMSE_INCREASE = "rmse_upper_bound", "max_rmse_increase"
MAX_SLICE_RMSE_INCREASE, MIN_SLICE_EXAMPLES = "max_slice_rmse_increase", "min_slice_examples"
LAST_BLESSED = "last blessed"
VS_LAST_BLESSED = "RMSE vs last blessed"


def judge(by_slice: Dict[str, Dict[str, Dict[str, float]]], upper_bound: Optional[float],
          max_increase: Optional[float], max_slice_increase: Optional[float],
          min_slice_examples: int) -> verdicts.Verdict:
    """The verdict on TFMA's {slice: {model: {metric: value}}} (components/evaluation.py)."""
    by_slice = dict(by_slice)
    overall = by_slice.pop(evaluation.OVERALL)
    rmse = overall[evaluation.CANDIDATE][evaluation.RMSE]
    last = overall.get(evaluation.BASELINE, {}).get(evaluation.RMSE)
    checks = []
    if upper_bound is not None:
        checks.append(verdicts.bound("RMSE bound", "RMSE", rmse, upper_bound, higher_is_better=False))
    if last is None:
        checks.append(verdicts.info(VS_LAST_BLESSED, f"RMSE {rmse:.4f}: no blessed model yet to compare with", rmse))
        return verdicts.Verdict(GATE, checks)
    checks.append(verdicts.increase(VS_LAST_BLESSED, "RMSE", rmse, LAST_BLESSED, last, max_increase))
    if max_slice_increase is None:
        return verdicts.Verdict(GATE, checks)
    small = []
    for name, models in sorted(by_slice.items()):
        count = int(models.get(evaluation.CANDIDATE, {}).get(evaluation.EXAMPLE_COUNT, 0))
        last_slice = models.get(evaluation.BASELINE, {}).get(evaluation.RMSE)
        if count < min_slice_examples or last_slice is None:
            small.append(f"{name} ({count:,})")
            continue
        checks.append(verdicts.increase(f"RMSE on {name} vs last blessed", f"RMSE on {name} ({count:,} examples)",
                                        models[evaluation.CANDIDATE][evaluation.RMSE], LAST_BLESSED, last_slice,
                                        max_slice_increase))
    if small:
        checks.append(verdicts.info("small slices", f"slices under {min_slice_examples:,} examples not gated: "
                                    + ", ".join(small)))
    return verdicts.Verdict(GATE, checks)


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        evaluated = artifact_utils.get_single_instance(input_dict[EVALUATION])
        verdict = judge(evaluation.load(evaluated.uri), exec_properties.get(RMSE_UPPER_BOUND),
                        exec_properties.get(MAX_RMSE_INCREASE), exec_properties.get(MAX_SLICE_RMSE_INCREASE),
                        int(exec_properties[MIN_SLICE_EXAMPLES]))
        verdicts.write(artifact_utils.get_single_instance(output_dict[verdicts.output_key(GATE)]), verdict)
