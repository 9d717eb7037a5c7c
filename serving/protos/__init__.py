"""Python modules for TF Serving protos that the tensorflow-serving-api wheel does not ship.

`session_bundle_config_pb2` (BatchingParameters) and `monitoring_config_pb2` (MonitoringConfig)
are generated, unedited, from tensorflow/serving at tag 2.16.1, so the deploy files are parsed by
the same message definitions tensorflow_model_server parses them with. Regenerate with
grpcio-tools 1.62.3 (its protoc matches the protobuf 4.25 runtime in the lock):

    git show 2.16.1:tensorflow_serving/servables/tensorflow/session_bundle_config.proto > ...
    git show 2.16.1:tensorflow_serving/config/monitoring_config.proto > ...
    python -m grpc_tools.protoc -I. -I<site-packages>/tensorflow/include --python_out=. \
        tensorflow_serving/servables/tensorflow/session_bundle_config.proto \
        tensorflow_serving/config/monitoring_config.proto
"""
