"""Errors the CLI reports as one clear line and a non-zero exit code."""


class MovierecError(Exception):
    """A failure the user can act on; its message is shown as-is."""


class DataError(MovierecError):
    """Input data that cannot be read or does not match the expected format."""


class DataValidationError(DataError):
    """ExampleValidator found anomalies: the data does not match the schema."""


class DriftError(DataValidationError):
    """The new data moved from the last accepted data past a drift threshold."""
