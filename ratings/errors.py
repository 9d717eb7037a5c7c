"""Errors the CLI reports as one clear line and a non-zero exit code, and what the codes mean.

The codes are `movierec run`'s, and the Airflow DAG's summary task records the same ones
(pipeline/airflow_dag.py): 1 an error (bad data, validation anomalies, a failing component),
3 the run finished but nothing was pushed (not blessed, or TF Serving could not serve the model),
4 another run holds the pipeline, 5 the new data drifted from the last accepted data past a
threshold (nothing trained or pushed).
"""
from ratings.records import RowError

EXIT_ERROR = 1
EXIT_NOT_BLESSED = 3
EXIT_LOCKED = 4
EXIT_DRIFT = 5


class MovierecError(Exception):
    """A failure the user can act on; its message is shown as-is."""


class DataError(MovierecError):
    """Input data that cannot be read or does not match the expected format."""


class DataValidationError(DataError):
    """ExampleValidator found anomalies: the data does not match the schema."""


class DriftError(DataValidationError):
    """The new data moved from the last accepted data past a drift threshold."""


def _chain(error: BaseException):
    """An exception and the ones it wraps (Beam and TFX wrap executor errors)."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def one_line(error: BaseException) -> str:
    """The most specific message in an exception chain."""
    for seen in _chain(error):
        if isinstance(seen, (RowError, MovierecError)):
            return str(seen).split(" [while running")[0]
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def exit_code(error: BaseException) -> int:
    """The exit code of a run a component failed with `error`: 5 for drift, else 1."""
    return EXIT_DRIFT if any(isinstance(seen, DriftError) for seen in _chain(error)) else EXIT_ERROR
