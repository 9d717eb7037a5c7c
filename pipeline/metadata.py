"""The ML Metadata store a pipeline's settings select: one connection config for every reader.

The runners (Local, Beam, the Airflow DAG: all through `create_pipeline`), the run summary, the
report, `movierec report` and killed-run recovery all connect through `connection_config`, so they
read and write the same store, SQLite file or shared MySQL/MariaDB database alike. Kubeflow
Pipelines / Vertex bring their own ML Metadata and ignore it.
"""
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata as tfx_metadata

from ratings.errors import MovierecError
from pipeline import configs


def password(settings: configs.MetadataConfig) -> str:
    """The database password, from the environment variable the settings name ('' if none is named)."""
    if not settings.password_env:
        return ""
    if settings.password_env not in os.environ:
        raise MovierecError(f"metadata.password_env: the environment variable {settings.password_env} "
                            f"is not set (the password of {settings.user}@{settings.host})")
    return os.environ[settings.password_env]


def connection_config(config: configs.PipelineConfig,
                      readonly: bool = False) -> metadata_store_pb2.ConnectionConfig:
    """TFX's SQLite or MySQL connection config for the configured store. `readonly` only binds
    SQLite (a MySQL connection's rights are the database user's)."""
    settings = config.metadata
    if settings.kind == "mysql":
        return tfx_metadata.mysql_metadata_connection_config(
            host=settings.host, port=settings.port, database=settings.database,
            username=settings.user, password=password(settings))
    connection = tfx_metadata.sqlite_metadata_connection_config(config.metadata_file)
    if readonly:
        connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return connection


def describe(config: configs.PipelineConfig) -> str:
    """Where the store is, for messages: the SQLite file or mysql://user@host:port/database."""
    settings = config.metadata
    if settings.kind == "mysql":
        return f"mysql://{settings.user}@{settings.host}:{settings.port}/{settings.database}"
    return config.metadata_file


def exists(config: configs.PipelineConfig) -> bool:
    """Whether there can be runs to read: a SQLite file is created by the first run (and opening
    one that is missing would create it); a database is there as soon as it is configured."""
    return config.metadata.kind == "mysql" or os.path.exists(config.metadata_file)


def connect(config: configs.PipelineConfig, readonly: bool = True) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(connection_config(config, readonly))
