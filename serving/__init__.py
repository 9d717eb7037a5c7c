"""Serving movierec models: a local TF Serving-compatible gRPC server, a client, deploy files."""
