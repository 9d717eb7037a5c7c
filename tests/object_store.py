"""A real S3-compatible object store on loopback for tests: moto's server (moto[server]).

Why S3 and not GCS: TensorFlow 2.16's built-in gs:// filesystem has no endpoint setting (its
library holds only storage.googleapis.com), and the tensorflow-io-gcs-filesystem plugin that
reads CLOUD_STORAGE_EMULATOR_ENDPOINT crashes TensorFlow 2.16 on its first call
(TF_USE_MODULAR_FILESYSTEM=1; tensorflow/tensorflow#70101, tensorflow/io#2020). For s3://,
TensorFlow reaches the server through tensorflow-io's S3 filesystem (S3_ENDPOINT) and Beam
through its boto3-based S3 filesystem (AWS_ENDPOINT_URL), as they would reach AWS.
"""
import contextlib
import logging
import os

import portpicker

BUCKET = "movierec-test"
REGION = "us-east-1"


@contextlib.contextmanager
def s3_server():
    """Starts moto's S3 server on a free 127.0.0.1 port with one bucket; yields "s3://<bucket>".

    The settings go into this process's environment, which the `movierec` processes tests start
    inherit; they are restored afterwards."""
    import boto3
    from moto.server import ThreadedMotoServer

    # The server logs every request at INFO; a pipeline run makes tens of thousands.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = portpicker.pick_unused_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    settings = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,  # boto3, under Beam's s3 filesystem
        "S3_ENDPOINT": endpoint, "S3_VERIFY_SSL": "0",  # tensorflow-io's s3 filesystem
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask a cloud metadata server for credentials
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


def objects(prefix_uri: str):
    """Keys under an s3:// prefix, as the server lists them (not through TensorFlow)."""
    import boto3

    bucket, _, prefix = prefix_uri[len("s3://"):].partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
