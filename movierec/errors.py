"""Errors the CLI reports as one clear line and a non-zero exit code, and what the codes mean.

The codes are `movierec run`'s, and the Airflow DAG's summary task records the same ones
(pipeline/airflow_dag.py): 1 an error (bad data, validation anomalies, a failing component),
3 the run finished but nothing was pushed (not blessed, or TF Serving could not serve the model),
4 another run holds the pipeline.
"""
from movierec.data.records import RowError

EXIT_ERROR = 1
EXIT_NOT_BLESSED = 3
EXIT_LOCKED = 4


class MovierecError(Exception):
    """A failure the user can act on; its message is shown as-is."""


class DataError(MovierecError):
    """Input data that cannot be read or does not match the expected format."""


class DataValidationError(DataError):
    """ExampleValidator found anomalies: the data does not match the schema."""


def one_line(error: BaseException) -> str:
    """The most specific message in an exception chain (Beam and TFX wrap executor errors)."""
    seen = error
    while seen is not None:
        if isinstance(seen, (RowError, MovierecError)):
            return str(seen).split(" [while running")[0]
        seen = seen.__cause__ or seen.__context__
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
