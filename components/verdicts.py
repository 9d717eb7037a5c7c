"""What every model gate hands the one gate that decides (components/model_gate): a verdict.

Why an artifact type of our own and not TFX's ModelBlessing: Kubeflow v2 compiles TFX's "latest
blessed model" resolver into a query for any ModelBlessing whose `blessed` property is 1
(tfx/orchestration/kubeflow/v2/step_builder.py, _build_resolver_for_latest_model_blessing); it
cannot say which component made it. So the ModelGate's blessing is the only ModelBlessing that
carries `blessed`, and the gates before it say what they found in a GateVerdict.

A verdict is a list of checks, each a figure of the candidate against a reference (a bound, the
last blessed model, a baseline fitted in the run) with the rule it had to meet. A check with
`passed` None was reported, not gated (its setting is off, or there was nothing to compare with).
"""
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.io import fileio
from tfx.utils import io_utils

VERDICT_FILE = "verdict.json"
# Custom properties of a GateVerdict, so ML Metadata readers see the outcome without the file.
GATE, PASSED = "gate", "passed"
# Comparisons allow for float rounding only.
TOLERANCE = 1e-10


class GateVerdict(types.Artifact):
    """verdict.json: the gate's name, whether it passed, and its checks."""
    # "<namespace>.<Name>": the form Kubeflow v2 requires of custom artifact types
    # (tfx/orchestration/kubeflow/v2/compiler_utils.py, get_artifact_schema).
    TYPE_NAME = "movierec.GateVerdict"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str                      # "NDCG@10 vs most popular"
    passed: Optional[bool]         # None: reported, not gated
    note: str                      # the check in words, figures included
    value: Optional[float] = None  # the candidate's figure
    reference: Optional[float] = None
    limit: Optional[float] = None  # the figure the candidate had to reach (or stay within)
    # How far inside the limit the candidate is, relative to it (negative when it failed):
    # the smallest one says which check came closest to deciding.
    headroom: Optional[float] = None


def _limit_check(name: str, note: str, value: float, reference: Optional[float], limit: float,
                 higher_is_better: bool) -> Check:
    gap = value - limit if higher_is_better else limit - value
    return Check(name, gap + TOLERANCE >= 0, note, value, reference, limit, gap / abs(limit) if limit else gap)


def relative(name: str, metric: str, value: float, reference_name: str, reference: float,
             change: Optional[float], higher_is_better: bool) -> Check:
    """The candidate's `value` against `reference`, which it must beat (or stay within) by the
    relative `change`: value >= reference x (1 + change) when higher is better, value <=
    reference x (1 + change) when lower is. A margin over a baseline is a positive change for NDCG
    (at least 10% above) and a negative one for RMSE (at least 2% below); a tolerance against the
    last blessed model has the other sign. `change` None: reported, not gated."""
    moved = f"{value / reference - 1:+.1%}" if reference else "n/a"
    note = f"{metric} {value:.4f} vs {reference_name} {reference:.4f}: {moved}"
    if change is None:
        return Check(name, None, note + " (not gated)", value, reference)
    rule = "at least" if higher_is_better else "at most"
    return _limit_check(name, f"{note} ({rule} {change:+.1%})", value, reference, reference * (1 + change),
                        higher_is_better)


def increase(name: str, metric: str, value: float, reference_name: str, reference: float,
             max_increase: Optional[float]) -> Check:
    """A lower-is-better `value` at most `max_increase` (absolute) above `reference`; None: reported."""
    note = f"{metric} {value:.4f} vs {reference_name} {reference:.4f}: {value - reference:+.4f}"
    if max_increase is None:
        return Check(name, None, note + " (not gated)", value, reference)
    return _limit_check(name, f"{note} (at most {max_increase:+g})", value, reference, reference + max_increase,
                        higher_is_better=False)


def bound(name: str, metric: str, value: float, limit: float, higher_is_better: bool) -> Check:
    """The candidate's `value` against a fixed bound."""
    check = _limit_check(name, "", value, None, limit, higher_is_better)
    if check.passed:
        note = f"{metric} {value:.4f} {'>=' if higher_is_better else '<='} bound {limit:g}"
    else:
        note = f"{metric} {value:.4f} is {'below' if higher_is_better else 'above'} the bound {limit:g}"
    return dataclasses.replace(check, note=note)


def info(name: str, note: str, value: Optional[float] = None) -> Check:
    """A check that was not made (nothing to compare with), with why."""
    return Check(name, None, note, value)


@dataclasses.dataclass(frozen=True)
class Verdict:
    gate: str
    checks: List[Check]

    @property
    def passed(self) -> bool:
        return all(check.passed is not False for check in self.checks)

    def as_dict(self) -> Dict[str, Any]:
        return {GATE: self.gate, PASSED: self.passed, "checks": [dataclasses.asdict(c) for c in self.checks]}


def write(artifact: types.Artifact, verdict: Verdict) -> None:
    io_utils.write_string_file(os.path.join(artifact.uri, VERDICT_FILE), json.dumps(verdict.as_dict(), indent=1))
    artifact.set_string_custom_property(GATE, verdict.gate)
    artifact.set_int_custom_property(PASSED, int(verdict.passed))


def read(artifact: types.Artifact) -> Dict[str, Any]:
    """A verdict as the dict `write` stored: {"gate", "passed", "checks": [Check fields]}."""
    with fileio.open(os.path.join(artifact.uri, VERDICT_FILE)) as f:
        return json.load(f)


class GateComponent(base_component.BaseComponent):
    """A model gate: a component whose output `<GATE>_verdict` is a GateVerdict the ModelGate reads.

    Each gate's output key is its own: TFX's Airflow launcher names artifacts `<output key>:<run
    id>` per artifact type, so two nodes may not output GateVerdicts under one key.
    """
    GATE = ""

    @property
    def verdict(self) -> types.BaseChannel:
        return self.outputs[output_key(self.GATE)]


def output_key(gate: str) -> str:
    """The output key of a gate's verdict."""
    return f"{gate}_verdict"
