"""Metadata settings: validated, printed and loaded back, and turned into TFX's connection configs."""
import pytest

from ratings.errors import MovierecError
from pipeline import configs, metadata


def test_metadata_settings_are_validated_and_select_the_connection(tmp_path, monkeypatch):
    path = tmp_path / "settings.yaml"
    path.write_text("metadata: {kind: mysql, host: db.internal, port: 3307, database: mlmd, user: ml, "
                    "password_env: MLMD_PASSWORD}\n")
    config = configs.load(path)
    printed = tmp_path / "printed.yaml"
    printed.write_text(configs.to_yaml(config))
    assert configs.load(printed) == config
    monkeypatch.delenv("MLMD_PASSWORD", raising=False)
    with pytest.raises(MovierecError, match="metadata.password_env: the environment variable MLMD_PASSWORD is not set"):
        metadata.connection_config(config)
    monkeypatch.setenv("MLMD_PASSWORD", "s3cret")
    mysql = metadata.connection_config(config).mysql
    assert (mysql.host, mysql.port, mysql.database, mysql.user, mysql.password) == (
        "db.internal", 3307, "mlmd", "ml", "s3cret")
    assert metadata.describe(config) == "mysql://ml@db.internal:3307/mlmd"
    sqlite = metadata.connection_config(configs.PipelineConfig(pipeline_root="/srv/p"))
    assert sqlite.sqlite.filename_uri == "/srv/p/metadata.sqlite"
    for text, message in [("metadata: {kind: postgres}", "metadata.kind: 'postgres' is not one of sqlite, mysql"),
                          ("metadata: {kind: mysql, database: m, user: u}", "metadata.host: required"),
                          ("metadata: {kind: mysql, host: h, database: m, user: u, port: '3306'}",
                           "metadata.port: '3306' is not a TCP port number"),
                          ("metadata: {kind: mysql, host: h, database: m, user: u, path: /x.sqlite}",
                           "metadata.path: only for metadata.kind sqlite")]:
        path.write_text(text + "\n")
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            configs.load(path)


def test_the_local_orchestrators_get_the_configured_store_and_kubeflow_none(tmp_path, monkeypatch):
    from pipeline.pipeline import KUBEFLOW_V2, LOCAL, create_pipeline

    config = configs.PipelineConfig(
        data=str(tmp_path), pipeline_root=str(tmp_path / "root"), serving_dir=str(tmp_path / "serving"),
        metadata=configs.MetadataConfig(kind="mysql", host="db.internal", database="mlmd", user="ml",
                                        password_env="MLMD_PASSWORD"))
    monkeypatch.delenv("MLMD_PASSWORD", raising=False)
    # Vertex / Kubeflow bring their own ML Metadata: compiling needs no database password.
    assert create_pipeline(config, KUBEFLOW_V2).metadata_connection_config is None
    monkeypatch.setenv("MLMD_PASSWORD", "s3cret")
    mysql = create_pipeline(config, LOCAL).metadata_connection_config.mysql
    assert (mysql.host, mysql.database, mysql.password) == ("db.internal", "mlmd", "s3cret")
