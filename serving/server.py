"""A stand-in for tensorflow_model_server 2.16.1: its gRPC APIs, checks and status messages.

`tensorflow_model_server` is not obtainable here (no Docker engine, no package ships it), so
`movierec serve` loads the same SavedModels with TensorFlow and answers PredictionService
(Predict, Regress, Classify, GetModelMetadata) and ModelService (GetModelStatus) with the codes
and messages TF Serving's source gives (servables/tensorflow/predict_util.cc, regressor.cc,
classifier.cc, get_model_metadata_impl.cc, model_servers/get_model_status_impl.cc). Every
rule, its source and its test are listed in docs/tf-serving-rules.md, with the places we differ.
The REST API (serving/rest.py) calls the same functions. A bad request never takes it down.
"""
import concurrent.futures
import dataclasses
import logging
import os
import time
from typing import Callable, Dict, List, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_log_pb2,
                                     prediction_service_pb2_grpc, regression_pb2, status_pb2)

from serving import batching
from serving.contract import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, SIGNATURE_DEF, WARMUP_FILE
from serving.contract import SERVING_DEFAULT as DEFAULT_SIGNATURE
from serving.metrics import Metrics, REQUEST_LATENCY, RUNTIME_LATENCY
from serving.repository import ModelRepository
from serving.status import ServingError, failed_precondition, invalid_argument

MAX_WARMUP_RECORDS = 1000  # saved_model_warmup_util.h WarmupConsts::kMaxNumRecords
STATES = {"LOADING": get_model_status_pb2.ModelVersionStatus.LOADING,
          "AVAILABLE": get_model_status_pb2.ModelVersionStatus.AVAILABLE,
          "UNLOADING": get_model_status_pb2.ModelVersionStatus.UNLOADING,
          "END": get_model_status_pb2.ModelVersionStatus.END}
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def from_tf_error(error: Exception) -> ServingError:
    """A TensorFlow error keeps its canonical code; Python-side argument errors are INVALID_ARGUMENT."""
    if isinstance(error, ServingError):
        return error
    if isinstance(error, tf.errors.OpError):
        return ServingError(_CODES.get(error.error_code, grpc.StatusCode.UNKNOWN), error.message.strip())
    if isinstance(error, (ValueError, TypeError)):
        return invalid_argument(str(error).strip().splitlines()[0][:500])
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")


@dataclasses.dataclass
class Servable:
    name: str
    version: int
    path: str
    model: object
    signature_defs: Dict[str, object]
    queues: Optional[Dict[str, batching.Queue]] = None  # one per signature with --enable_batching

    def run(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Runs a signature on inputs already checked against its SignatureDef."""
        if self.queues is None:
            return self.execute(signature_name, inputs)
        return self.queues[signature_name].run(inputs)

    def execute(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        try:
            outputs = self.model.signatures[signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
            return {key: value.numpy() for key, value in outputs.items()}
        except Exception as e:
            raise from_tf_error(e) from e


def check_inputs(signature_def, inputs: Dict[str, np.ndarray]) -> None:
    """Types and shapes against the SignatureDef, before the inputs reach the model or a batch."""
    for key, value in inputs.items():
        tensor_info = signature_def.inputs[key]
        dtype = tf.dtypes.as_dtype(tensor_info.dtype)
        given = tf.string if value.dtype.kind in "SOU" else tf.dtypes.as_dtype(value.dtype)
        if given != dtype:  # no silent casts: TF Serving rejects an int64 `k` for an int32 input
            raise invalid_argument(f"Expects arg[{key}] to be {dtype.name} but {given.name} is provided")
        expected_shape = tf.TensorShape(tensor_info.tensor_shape)
        if not expected_shape.is_compatible_with(value.shape):
            raise invalid_argument(f"arg[{key}] has shape {list(value.shape)}, the signature expects {expected_shape}")


def _input_tensor(alias: str, proto) -> np.ndarray:
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # TensorProto that does not hold the values its shape says
        raise invalid_argument(f"tensor parsing error: {alias}") from e


def _fill_spec(model_spec, servable: Servable, signature_name: str = "") -> None:
    model_spec.name = servable.name
    model_spec.version.value = servable.version
    if signature_name:
        model_spec.signature_name = signature_name


def predict(servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """predict_util.cc RunPredict / PreProcessPrediction."""
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    if name not in servable.signature_defs:
        raise failed_precondition(f'Serving signature key "{name}" not found.')
    signature = servable.signature_defs[name]
    if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise ServingError(grpc.StatusCode.INTERNAL, "Expected prediction signature method_name to be one of "
                           f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}")
    sent, expected = set(request.inputs), set(signature.inputs)
    if len(sent) > len(expected) or (len(sent) < len(expected) and not signature.defaults):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sorted(sent))}}})"
            f" != len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
    if sent != expected:  # as many inputs as the signature has, but not its names
        raise invalid_argument(f"input tensor alias not found in signature: {', '.join(sorted(sent - expected))}. "
                               f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.")
    inputs = {alias: _input_tensor(alias, proto) for alias, proto in request.inputs.items()}
    aliases = list(request.output_filter)
    for alias in aliases:
        if alias not in signature.outputs:
            raise invalid_argument(f"output tensor alias not found in signature: {alias} Outputs expected to be "
                                   f"in the set {{{','.join(sorted(signature.outputs))}}}.")
    if len(set(aliases)) != len(aliases):
        duplicate = next(a for a in aliases if aliases.count(a) > 1)
        raise invalid_argument(f"duplicate output tensor alias: {duplicate}")
    check_inputs(signature, inputs)
    outputs = servable.run(name, inputs)
    response = predict_pb2.PredictResponse()
    _fill_spec(response.model_spec, servable, name)
    for alias in aliases or signature.outputs:
        response.outputs[alias].CopyFrom(tf.make_tensor_proto(outputs[alias]))
    return response


def _examples(request) -> np.ndarray:
    """util.cc InputToSerializedExampleTensor: the request's tf.Examples, serialized."""
    which = request.input.WhichOneof("kind")
    if which == "example_list_with_context":
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                           "example_list_with_context is not supported by movierec serve")
    examples = request.input.example_list.examples
    if not examples:
        raise invalid_argument("Input is empty.")
    return np.array([e.SerializeToString() for e in examples], dtype=object)


def _example_signature(servable: Servable, model_spec, kind: str, method: str, check_method: bool,
                       outputs_allowed) -> tuple:
    """regressor.cc / classifier.cc Get*SignatureDef and PreProcess*: (name, SignatureDef)."""
    name = model_spec.signature_name or DEFAULT_SIGNATURE
    if name not in servable.signature_defs:
        raise invalid_argument(f"No signature was found with the name: {name}")
    signature = servable.signature_defs[name]
    if check_method and signature.method_name != method:
        raise invalid_argument(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in outputs_allowed:
        raise invalid_argument("Expected one output Tensor." if outputs_allowed == (1,) else
                               f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if "inputs" not in signature.inputs:
        raise invalid_argument(f"No {kind} inputs found in SignatureDef: {signature}")
    return name, signature


def regress(servable: Servable, request: regression_pb2.RegressionRequest,
            check_method: bool = False) -> regression_pb2.RegressionResponse:
    name, signature = _example_signature(servable, request.model_spec, "regression", REGRESS_METHOD,
                                         check_method, (1,))
    if "outputs" not in signature.outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {signature}")
    examples = _examples(request)
    inputs = {"inputs": examples}
    check_inputs(signature, inputs)
    values = servable.run(name, inputs)["outputs"]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument("Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                               f"{list(values.shape)}")
    if values.shape[0] != len(examples):
        raise invalid_argument(f"Input batch size did not match output batch size: {len(examples)} vs. "
                               f"{values.shape[0]}")
    if values.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {tf.as_dtype(values.dtype).name}")
    response = regression_pb2.RegressionResponse()
    _fill_spec(response.model_spec, servable, name)
    response.result.regressions.extend(regression_pb2.Regression(value=float(v)) for v in values.reshape(-1))
    return response


def classify(servable: Servable, request: classification_pb2.ClassificationRequest,
             check_method: bool = False) -> classification_pb2.ClassificationResponse:
    name, signature = _example_signature(servable, request.model_spec, "classification", CLASSIFY_METHOD,
                                         check_method, (1, 2))
    if not {"classes", "scores"} & set(signature.outputs):
        raise invalid_argument('Expected classification signature outputs to contain at least one of "classes" '
                               f'or "scores". Signature was: {signature}')
    examples = _examples(request)
    inputs = {"inputs": examples}
    check_inputs(signature, inputs)
    outputs = servable.run(name, inputs)
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for label, value, dtype in (("classes", classes, "O"), ("scores", scores, "f")):
        if value is None:
            continue
        if value.ndim != 2:
            raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)}")
        if value.dtype.kind != dtype:
            raise invalid_argument(f"Expected {label} Tensor of {'DT_STRING' if dtype == 'O' else 'DT_FLOAT'}.")
        if value.shape[0] != len(examples):
            raise invalid_argument(f"Expected {label} output batch size of {len(examples)}. Got: {value.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument("Tensors class and score should match in dim_size(1). Got "
                               f"{classes.shape[1]} vs. {scores.shape[1]}")
    response = classification_pb2.ClassificationResponse()
    _fill_spec(response.model_spec, servable, name)
    width = (classes if classes is not None else scores).shape[1]
    for i in range(len(examples)):
        row = response.result.classifications.add()
        for c in range(width):
            entry = row.classes.add()
            if classes is not None:
                entry.label = classes[i, c].decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[i, c])
    return response


def replay_warmup(servable: Servable, log: prediction_log_pb2.PredictionLog) -> None:
    """saved_model_warmup.cc RunSavedModelWarmup's executor: the record's request, on this version."""
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        predict(servable, log.predict_log.request)
    elif kind == "regress_log":
        regress(servable, log.regress_log.request)
    elif kind == "classify_log":
        classify(servable, log.classify_log.request)
    else:
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                           f"Unsupported log_type for warmup: {kind}")


def warmup_records(version_dir: str) -> List[prediction_log_pb2.PredictionLog]:
    """The version's warmup requests (none without the file); an unparsable record or more than
    1,000 records fail the load (saved_model_warmup_util.cc RunSavedModelWarmup)."""
    file = os.path.join(version_dir, WARMUP_FILE)
    if not tf.io.gfile.exists(file):
        return []
    logs = []
    for record in tf.data.TFRecordDataset(file).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(record)
        except Exception as e:
            raise invalid_argument(f"Failed to parse warmup record from {file}") from e
        logs.append(log)
        if len(logs) > MAX_WARMUP_RECORDS:
            raise invalid_argument(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {file}")
    return logs


class Loader:
    """Loads a version as the server is configured: batching queues, then the warmup replay."""

    def __init__(self, batching_options: Optional[batching.Options], warmup: bool, warmup_iterations: int = 1):
        self.batching_options, self.warmup, self.warmup_iterations = batching_options, warmup, warmup_iterations

    def load(self, name: str, version: int, path: str) -> Servable:
        try:
            meta_graph = loader_impl.parse_saved_model(path).meta_graphs[0]
            model = tf.saved_model.load(path)
        except Exception as e:
            raise ServingError(grpc.StatusCode.NOT_FOUND if isinstance(e, OSError) else grpc.StatusCode.INTERNAL,
                               f"{type(e).__name__}: {str(e).strip().splitlines()[0][:500]}") from e
        signature_defs = {k: v for k, v in meta_graph.signature_def.items() if k in model.signatures}
        servable = Servable(name, version, path, model, signature_defs)
        if self.batching_options is not None:
            servable.queues = {key: batching.Queue(self.batching_options, self._executor(servable, key),
                                                   f"{name}-{version}-{key}") for key in signature_defs}
        if self.warmup:
            try:
                self._warm_up(servable)
            except Exception:
                self.unload(servable)
                raise
        return servable

    @staticmethod
    def _executor(servable: Servable, signature_name: str) -> Callable:
        return lambda inputs: servable.execute(signature_name, inputs)

    def _warm_up(self, servable: Servable) -> None:
        for log in warmup_records(servable.path):
            for _ in range(self.warmup_iterations):
                replay_warmup(servable, log)

    @staticmethod
    def unload(servable: Servable) -> None:
        for queue in (servable.queues or {}).values():
            queue.stop()


def _version(model_spec):
    return model_spec.version.value if model_spec.WhichOneof("version_choice") == "version" else None


class Core:
    """The APIs on a repository, shared by the gRPC and REST entry points."""

    def __init__(self, repository: ModelRepository, metrics: Metrics, check_method_names: bool = False):
        self.repository, self.metrics, self.check_method_names = repository, metrics, check_method_names

    def servable(self, model_spec) -> Servable:
        return self.repository.get(model_spec.name, _version(model_spec), model_spec.version_label)

    def predict(self, request):
        return self._timed("Predict", request.model_spec.name, lambda: predict(self.servable(request.model_spec),
                                                                                request))

    def regress(self, request):
        return self._timed("Regress", request.model_spec.name, lambda: regress(
            self.servable(request.model_spec), request, self.check_method_names))

    def classify(self, request):
        return self._timed("Classify", request.model_spec.name, lambda: classify(
            self.servable(request.model_spec), request, self.check_method_names))

    def _timed(self, api: str, model_name: str, call):
        started = time.perf_counter()
        result = call()
        self.metrics.observe(RUNTIME_LATENCY, (model_name, api, "TF1"), (time.perf_counter() - started) * 1e6)
        return result

    def metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """get_model_metadata_impl.cc."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF:
                raise invalid_argument(f"Metadata field {field} is not supported")
        servable = self.servable(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, servable)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature_def)
        response.metadata[SIGNATURE_DEF].Pack(signatures)
        return response

    def status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        """get_model_status_impl.cc."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        response = get_model_status_pb2.GetModelStatusResponse()
        for state in self.repository.states(request.model_spec.name, _version(request.model_spec)):
            error = state.error
            response.model_version_status.add(
                version=state.version, state=STATES[state.state],
                status=status_pb2.StatusProto(error_code=error.code.value[0] if error else 0,
                                              error_message=error.message if error else ""))
        return response


def _grpc_method(api: str, call, counted: bool):
    """A servicer method: TF Serving's status on failure; request count and latency as
    prediction_service_impl.cc records them (Predict, Classify, Regress only)."""
    def method(self, request, context):
        started = time.perf_counter()
        try:
            response = call(self.core, request)
            code = "OK"
        except Exception as e:
            error = from_tf_error(e)
            if error.code == grpc.StatusCode.INTERNAL:
                logging.exception("%s failed", api)
            if counted:
                self.core.metrics.count_request(request.model_spec.name, error.code_name)
            context.abort(error.code, error.message)
        if counted:
            self.core.metrics.count_request(request.model_spec.name, code)
            self.core.metrics.observe(REQUEST_LATENCY, (request.model_spec.name, api, "GRPC"),
                                      (time.perf_counter() - started) * 1e6)
        return response
    return method


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: Core):
        self.core = core

    Predict = _grpc_method("Predict", Core.predict, True)
    Regress = _grpc_method("Regress", Core.regress, True)
    Classify = _grpc_method("Classify", Core.classify, True)
    GetModelMetadata = _grpc_method("GetModelMetadata", Core.metadata, False)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: Core):
        self.core = core

    GetModelStatus = _grpc_method("GetModelStatus", Core.status, False)


def make_grpc_server(core: Core, address: str, workers: int = 16) -> grpc.Server:
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    return server
