"""ModelGate executor: every gate's verdict, combined into TFX's ModelBlessing (see component.py)."""
import json
import os
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import verdicts

# Not "blessing": TFMA's Evaluator outputs its ModelBlessing under that key, and TFX's Airflow launcher
# names outputs "<key>:<run id>", which ML Metadata keeps unique per type (tests/unit/pipeline/test_output_names.py).
MODEL, GATES, BLESSING = "model", "gates", "model_blessing"
GATES_FILE = "gates.json"
# Custom property: the checks that decided, one line (the run summary and `movierec report` show it).
DECIDED_BY = "decided_by"


def decide(gate_verdicts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """{"blessed", "decided_by": [lines], "gates": verdicts} of the gates' verdicts, in order.

    Refused: the failed checks, the furthest from their limit first. Blessed: the gated check
    with the least headroom, the one that came closest to refusing."""
    blessed = all(verdict[verdicts.PASSED] for verdict in gate_verdicts)
    checks = [(verdict[verdicts.GATE], check) for verdict in gate_verdicts for check in verdict["checks"]
              if check["passed"] is not None and (blessed or check["passed"] is False)]
    checks.sort(key=lambda pair: pair[1]["headroom"])
    decided = [f"{gate}: {check['note']}" for gate, check in (checks[:1] if blessed else checks)]
    return {"blessed": blessed, "decided_by": decided, "gates": gate_verdicts}


def load(blessing_uri: str) -> Dict[str, Any]:
    """The gates.json a ModelGate wrote: what `decide` returned."""
    with fileio.open(os.path.join(blessing_uri, GATES_FILE)) as f:
        return json.load(f)


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        model = artifact_utils.get_single_instance(input_dict[MODEL])
        decision = decide([verdicts.read(artifact_utils.get_single_instance(input_dict[name]))
                           for name in json.loads(exec_properties[GATES])])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING])
        io_utils.write_string_file(os.path.join(blessing.uri, GATES_FILE), json.dumps(decision, indent=1))
        # TFX's blessing layout (tfx/components/evaluator/executor.py), which its resolvers and
        # Pusher read: a BLESSED or NOT_BLESSED file, `blessed`, and the model it is about.
        blessed = decision["blessed"]
        io_utils.write_string_file(os.path.join(
            blessing.uri, constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME), "")
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_string_custom_property(DECIDED_BY, "; ".join(decision["decided_by"]))
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                         constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE)
        logging.info("Model gate: %s - %s", "blessed" if blessed else "not blessed", "; ".join(decision["decided_by"]))
