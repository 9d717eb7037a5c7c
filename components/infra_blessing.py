"""The InfraBlessing's layout and properties: written by infra validation (components/infra_validator),
read by the Pusher and the run summary, so neither imports the validator (nor its model-server client)."""
from tfx import types

# TFX's InfraBlessing layout (tfx/components/infra_validator/executor.py `_mark_blessed`).
BLESSED_FILE, NOT_BLESSED_FILE, BLESSED = "INFRA_BLESSED", "INFRA_NOT_BLESSED", "blessed"
# Custom property: why the model was (not) blessed, one line, for the run summary.
NOTE = "infra_validation_note"


def note(blessing: types.Artifact) -> str:
    return blessing.get_string_custom_property(NOTE)
