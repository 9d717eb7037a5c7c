"""A local server that speaks TensorFlow Serving's gRPC API, for development and tests.

Production runs the real `tensorflow/serving` image on the same model directory (see deploy.py);
`tensorflow_model_server` cannot run everywhere (no Docker engine here, no package ships it), so
this server implements the same contract with the `tensorflow_serving.apis` protos and stubs:
PredictionService (Predict, Regress, Classify, GetModelMetadata) and ModelService
(GetModelStatus), with TF Serving's status codes: unknown model, version or signature ->
NOT_FOUND; malformed input -> INVALID_ARGUMENT. A bad request never takes the server down.
"""
import concurrent.futures
import logging
import re
from typing import Dict

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_log_pb2,
                                     prediction_service_pb2_grpc, regression_pb2, status_pb2)

from serving.contract import CLASSIFY_METHOD, REGRESS_METHOD, SERVING_DEFAULT
from serving.repository import ModelRepository, NotFound, Servable

STATES = {"LOADING": get_model_status_pb2.ModelVersionStatus.LOADING,
          "AVAILABLE": get_model_status_pb2.ModelVersionStatus.AVAILABLE,
          "END": get_model_status_pb2.ModelVersionStatus.END}


class BadRequest(ValueError):
    """The request does not fit the signature: INVALID_ARGUMENT."""


def _message(error: Exception) -> str:
    """One line: a model's own assertion message if it has one, else the error's first line."""
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    assertion = re.search(r"assertion failed: \[([^\]]*)\]", text)
    return assertion.group(1) if assertion else text.strip().splitlines()[0][:500]


def _abort(context: grpc.ServicerContext, error: Exception):
    if isinstance(error, NotFound):
        context.abort(grpc.StatusCode.NOT_FOUND, str(error))
    if isinstance(error, (BadRequest, tf.errors.InvalidArgumentError, ValueError, TypeError)):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(error))
    logging.exception("Request failed")
    context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")


def _version(model_spec) -> int:
    return model_spec.version.value if model_spec.HasField("version") else None


def run_signature(servable: Servable, name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, tf.Tensor]:
    """Calls a signature with numpy inputs, checked against its SignatureDef first."""
    function, signature_def = servable.signature(name)
    expected, given = set(signature_def.inputs), set(inputs)
    if expected != given:
        raise BadRequest(f"input size does not match signature: {len(given)}!={len(expected)} "
                         f"len({{{', '.join(sorted(given))}}}) != len({{{', '.join(sorted(expected))}}})")
    arguments, batch_sizes = {}, {}
    for key, value in inputs.items():
        tensor_info = signature_def.inputs[key]
        dtype = tf.dtypes.as_dtype(tensor_info.dtype)
        given = tf.string if value.dtype.kind in "SOU" else tf.dtypes.as_dtype(value.dtype)
        if given != dtype:  # no silent casts: TF Serving rejects an int64 `k` for an int32 input
            raise BadRequest(f"Expects arg[{key}] to be {dtype.name} but {given.name} is provided")
        expected_shape = tf.TensorShape(tensor_info.tensor_shape)
        if not expected_shape.is_compatible_with(value.shape):
            raise BadRequest(f"arg[{key}] has shape {list(value.shape)}, "
                             f"the signature expects {expected_shape}")
        if expected_shape.rank and expected_shape[0] is None:
            batch_sizes[key] = value.shape[0]
        arguments[key] = tf.constant(value, dtype=dtype)
    if len(set(batch_sizes.values())) > 1:
        # A model may broadcast [2] user IDs against [1] movie ID; TF Serving's batching refuses.
        raise BadRequest("input tensors must have equal 0th-dimension size: " + ", ".join(
            f"{key} {size}" for key, size in sorted(batch_sizes.items())))
    return function(**arguments)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def Predict(self, request, context):
        try:
            return predict(self._repository.get(request.model_spec.name, _version(request.model_spec)),
                           request)
        except Exception as e:
            _abort(context, e)

    def _signature_of_method(self, model_spec, kind: str, method: str):
        """(servable, signature name) for a Regress/Classify request; BadRequest if the signature's
        method is not `method` (with TF Serving's wording)."""
        servable = self._repository.get(model_spec.name, _version(model_spec))
        name = model_spec.signature_name or SERVING_DEFAULT
        _, signature_def = servable.signature(name)
        if signature_def.method_name != method:
            raise BadRequest(f"Expected {kind} signature method_name to be {method}. "
                             f"Was: {signature_def.method_name}")
        return servable, name

    def Regress(self, request, context):
        try:
            servable, name = self._signature_of_method(request.model_spec, "regression", REGRESS_METHOD)
            examples = [e.SerializeToString() for e in request.input.example_list.examples]
            if not examples:
                raise BadRequest("Input is empty: RegressionRequest needs input.example_list")
            values = run_signature(servable, name, {"inputs": np.array(examples, dtype=object)})
            response = regression_pb2.RegressionResponse()
            _fill_spec(response.model_spec, servable, name)
            response.result.regressions.extend(
                regression_pb2.Regression(value=float(v)) for v in values["outputs"].numpy().reshape(-1))
            return response
        except Exception as e:
            _abort(context, e)

    def Classify(self, request, context):
        try:
            # movierec models predict ratings: none of their signatures is a classifier, so this
            # raises NOT_FOUND or INVALID_ARGUMENT as TF Serving would.
            self._signature_of_method(request.model_spec, "classification", CLASSIFY_METHOD)
            raise BadRequest(f"model {request.model_spec.name} has no classification signature")
        except Exception as e:
            _abort(context, e)

    def GetModelMetadata(self, request, context):
        try:
            servable = self._repository.get(request.model_spec.name, _version(request.model_spec))
            unsupported = set(request.metadata_field) - {"signature_def"}
            if unsupported:
                raise BadRequest(f"Metadata field(s) not supported: {', '.join(sorted(unsupported))}")
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _fill_spec(response.model_spec, servable, None)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for key, signature_def in servable.signature_defs.items():
                signatures.signature_def[key].CopyFrom(signature_def)
            response.metadata["signature_def"].Pack(signatures)
            return response
        except Exception as e:
            _abort(context, e)


def _fill_spec(model_spec, servable: Servable, signature_name) -> None:
    model_spec.name = servable.name
    model_spec.version.value = servable.version
    if signature_name:
        model_spec.signature_name = signature_name


def predict(servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    name = request.model_spec.signature_name or SERVING_DEFAULT
    try:
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    except (TypeError, ValueError) as e:
        raise BadRequest(f"Malformed input tensor: {e}") from e
    outputs = run_signature(servable, name, inputs)
    wanted = set(request.output_filter) or set(outputs)
    unknown = wanted - set(outputs)
    if unknown:
        raise BadRequest(f"output tensor alias not found in signature: {', '.join(sorted(unknown))}")
    response = predict_pb2.PredictResponse()
    _fill_spec(response.model_spec, servable, name)
    for key in wanted:
        response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
    return response


def replay_warmup(servable: Servable, log: prediction_log_pb2.PredictionLog) -> None:
    """Runs one warmup record before the version serves, as TF Serving does (Predict records)."""
    predict(servable, log.predict_log.request)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def GetModelStatus(self, request, context):
        try:
            states = self._repository.states(request.model_spec.name, _version(request.model_spec))
        except Exception as e:
            _abort(context, e)
        response = get_model_status_pb2.GetModelStatusResponse()
        for state in states:
            response.model_version_status.add(
                version=state.version, state=STATES[state.state],
                status=status_pb2.StatusProto(
                    error_code=error_codes_pb2.UNKNOWN if state.error else error_codes_pb2.OK,
                    error_message=state.error))
        return response


def make_server(repository: ModelRepository, address: str, workers: int = 8) -> grpc.Server:
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(repository), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    return server
