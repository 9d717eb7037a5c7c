"""A stand-in for tensorflow_model_server 2.16.1: its gRPC APIs, checks and status messages.

`tensorflow_model_server` is not obtainable here (no Docker engine, no package ships it), so
`movierec serve` loads the same SavedModels as it does (each version's MetaGraphDef in a
TensorFlow session, signatures run by tensor name, outputs in the typed fields) and answers PredictionService
(Predict, Regress, Classify, GetModelMetadata) and ModelService (GetModelStatus) with the codes
and messages TF Serving's source gives (servables/tensorflow/predict_util.cc, regressor.cc,
classifier.cc, get_model_metadata_impl.cc, model_servers/get_model_status_impl.cc). Every
rule, its source and its test are listed in docs/tf-serving-rules.md, with the places we differ.
The REST API (serving/model_server/rest.py) calls the same functions. A bad request never takes it down.
"""
import concurrent.futures
import dataclasses
import logging
import os
import time
import threading
from typing import Callable, Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_log_pb2,
                                     prediction_service_pb2_grpc, regression_pb2, status_pb2)

from serving.model_server import batching
from serving.contract import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, SIGNATURE_DEF, WARMUP_FILE
from serving.contract import TYPED_FIELDS, ndarray
from serving.contract import SERVING_DEFAULT as DEFAULT_SIGNATURE
from serving.model_server.metrics import Metrics, REQUEST_LATENCY, RUNTIME_LATENCY
from serving.model_server.repository import ModelRepository
from serving.model_server.status import ServingError, failed_precondition, invalid_argument

CALLER_THREAD = -1  # RunOptions.inter_op_thread_pool: run the step's ops in the calling thread
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


def tensor_proto(array: np.ndarray, proto: Optional[tensor_pb2.TensorProto] = None) -> tensor_pb2.TensorProto:
    """An output as predict_util.cc writes it (Tensor::AsProtoField): dtype, shape and every value
    in the dtype's typed field (float_val, string_val, ...; contract.TYPED_FIELDS), never
    tensor_content, so a client that reads `outputs["rating"].float_val` gets the values. Written
    into `proto` when given (an empty answer field, e.g. `response.outputs[alias]`): built in place,
    the answer is not built once and copied again (half the CPU for a batch-1 Predict's three
    outputs, benchmarks/README.md)."""
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto() if proto is None else proto
    flat = array.reshape(-1)
    proto.tensor_shape.SetInParent()  # set even for a 0-d array (contract.tensor_shape)
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype == object:
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    elif array.dtype in TYPED_FIELDS:
        proto.dtype, field = TYPED_FIELDS[array.dtype]
        getattr(proto, field).extend(flat.tolist())
    else:
        proto.dtype = tf.as_dtype(array.dtype).as_datatype_enum
        if array.dtype == np.float16:  # half and bfloat16 as bit patterns
            proto.half_val.extend(flat.view(np.uint16).tolist())
        elif array.dtype == np.complex64:
            proto.scomplex_val.extend(flat.view(np.float32).tolist())
        elif array.dtype == np.complex128:
            proto.dcomplex_val.extend(flat.view(np.float64).tolist())
        else:
            proto.CopyFrom(tf.make_tensor_proto(array))
    return proto


@dataclasses.dataclass
class Servable:
    """A loaded version: the SavedModel's MetaGraphDef in a TensorFlow session, as TF Serving's
    SavedModelBundle holds it. Signatures run as Session::Run does in predict_util.cc: the
    request's tensors fed by the SignatureDef's tensor names, its outputs fetched by theirs, no
    check of shapes (a scalar fed to a [-1, 1] input runs), dtype mismatches reported by
    TensorFlow ("Expects arg[0] to be float but bool is provided")."""
    name: str
    version: int
    path: str
    session: object
    signature_defs: Dict[str, object]  # every SignatureDef of the MetaGraphDef, __saved_model_init_op too
    queues: Optional[Dict[str, batching.Queue]] = None  # one per signature with --enable_batching
    metrics: Optional[Metrics] = None  # runtime latency, as predict_util.cc / regressor.cc record it
    callables: Dict[tuple, object] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def run(self, signature_name: str, inputs: Dict[str, np.ndarray], timeout_ms: int = 0) -> Dict[str, np.ndarray]:
        """Runs a signature: through its batch queue with batching, else directly."""
        if self.queues is None:
            return self.execute(signature_name, inputs, timeout_ms, fixed_timeout=True)
        return self.queues[signature_name].run(inputs, timeout_ms)

    def execute(self, signature_name: str, inputs: Dict[str, np.ndarray], timeout_ms: int = 0,
                fixed_timeout: bool = False) -> Dict[str, np.ndarray]:
        """Session::Run with the signature's feeds and fetches (RunOptions.timeout_in_ms if > 0:
        a run that takes longer is cancelled, DEADLINE_EXCEEDED). A `fixed_timeout` (the REST
        API's --rest_api_timeout_in_ms on an unbatched run: one value for the server's life) is
        built into a session callable's RunOptions, made once like the callables without one;
        a batch's timeout (what is left of its tasks' deadlines) differs from run to run, so it
        goes through the session's run call, which looks up feeds and fetches on every call
        (1.2-1.6x the callable's time, benchmarks/README.md)."""
        signature = self.signature_defs[signature_name]
        aliases = sorted(inputs)
        outputs = sorted(signature.outputs)
        try:
            if timeout_ms > 0 and not fixed_timeout:
                values = self._run_with_options(signature_name, aliases, outputs, inputs, timeout_ms)
            else:
                values = self._callable(signature_name, aliases, outputs, timeout_ms)(
                    *[inputs[alias] for alias in aliases])
        except Exception as e:
            raise from_tf_error(e) from e
        return {alias: _array(value) for alias, value in zip(outputs, values)}

    def _callable(self, signature_name: str, aliases: List[str], outputs: List[str], timeout_ms: int = 0):
        """A session callable for these feeds, fetches and timeout (made once: the graph is pruned
        once; DirectSession::RunCallable runs it with the CallableOptions' RunOptions). A run
        without a timeout executes its ops in the calling thread (RunOptions.inter_op_thread_pool
        -1, DirectSession's synchronous path) instead of handing each op to the inter-op pool:
        the signatures are small graphs, where the hand-offs cost more than the ops (0.50-0.67x the
        CPU per run, benchmarks/README.md). A timed run keeps the pool: DirectSession enforces
        timeout_in_ms only there (a synchronous run is never cancelled)."""
        key = (signature_name, tuple(aliases), timeout_ms)
        run = self.callables.get(key)
        if run is None:
            signature = self.signature_defs[signature_name]
            options = config_pb2.CallableOptions(feed=[signature.inputs[alias].name for alias in aliases],
                                                 fetch=[signature.outputs[alias].name for alias in outputs])
            if timeout_ms > 0:
                options.run_options.timeout_in_ms = timeout_ms
            else:
                options.run_options.inter_op_thread_pool = CALLER_THREAD
            with self.lock:
                run = self.callables.setdefault(key, self.session._make_callable_from_options(options))
        return run

    def _run_with_options(self, signature_name: str, aliases: List[str], outputs: List[str],
                          inputs: Dict[str, np.ndarray], timeout_ms: int) -> list:
        """Session::Run with RunOptions, through the session's own run call (callables fix their
        RunOptions when made, and each batch has its own deadline)."""
        from tensorflow.python.client import pywrap_tf_session
        signature, graph = self.signature_defs[signature_name], self.session.graph
        tensor = lambda name: graph.get_tensor_by_name(name)._as_tf_output()
        feeds = {tensor(signature.inputs[alias].name): inputs[alias] for alias in aliases}
        fetches = [tensor(signature.outputs[alias].name) for alias in outputs]
        options = pywrap_tf_session.TF_NewBufferFromString(
            config_pb2.RunOptions(timeout_in_ms=timeout_ms).SerializeToString())
        try:
            return self.session._call_tf_sessionrun(options, feeds, fetches, [], None)
        finally:
            pywrap_tf_session.TF_DeleteBuffer(options)


def _array(value) -> np.ndarray:
    """A fetched value as an array (the session gives a scalar string as bytes)."""
    if isinstance(value, np.ndarray):
        return value
    return np.array(value, dtype=object) if isinstance(value, bytes) else np.asarray(value)


def check_dtypes(signature_def, inputs: Dict[str, np.ndarray]) -> None:
    """Each input's dtype against the SignatureDef, with the message Session::Run's call frame
    gives (FunctionCallFrame::SetArgs; arg index in name order). Checked before the run (a session
    callable reports it in other words) and before a batch, so one client's wrong dtype fails only
    its own request, not the batch it would be merged into. The DataType numbers are compared
    (the numeric dtypes' from contract.TYPED_FIELDS), TensorFlow's DType objects made only for
    other dtypes and for the message: on every request they cost more than the check itself."""
    for index, key in enumerate(sorted(inputs)):
        expected = signature_def.inputs[key].dtype
        dtype = inputs[key].dtype
        given = types_pb2.DT_STRING if dtype.kind in "SOU" else \
            TYPED_FIELDS[dtype][0] if dtype in TYPED_FIELDS else tf.dtypes.as_dtype(dtype).as_datatype_enum
        if given != expected:
            raise invalid_argument(f"Expects arg[{index}] to be {_type_string(expected)} but "
                                   f"{_type_string(given)} is provided")


def _type_string(datatype: int) -> str:
    """DataTypeString: DT_FLOAT -> "float"."""
    return types_pb2.DataType.Name(datatype)[3:].lower()


def _input_tensor(alias: str, proto) -> np.ndarray:
    """Tensor::FromProto: the array tf.make_ndarray reads (contract.ndarray: the typed fields and
    tensor_content clients send read directly, every other form by make_ndarray); a TensorProto
    that does not hold the values its shape says is refused."""
    try:
        return ndarray(proto)
    except Exception as e:
        raise invalid_argument(f"tensor parsing error: {alias}") from e


def _input_values(signature, request_inputs) -> Dict[str, np.ndarray]:
    """TF's cc/saved_model/util.cc GetInputValues: each signature input from the request, else
    from the signature's defaults; a request input the signature does not have is refused."""
    inputs, seen = {}, set()
    for alias in sorted(signature.inputs):
        if alias in request_inputs:
            proto = request_inputs[alias]
            seen.add(alias)
        elif alias in signature.defaults:
            proto = signature.defaults[alias]
        else:
            raise invalid_argument(
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) not found in request "
                f"and no default value provided. Inputs expected to be in the request "
                f"{{{','.join(sorted(request_inputs))}}}, or default input alias set: "
                f"{{{','.join(sorted(signature.defaults))}}}")
        inputs[alias] = _input_tensor(alias, proto)
    if request_inputs and len(seen) != len(request_inputs):
        raise invalid_argument(f"Inputs contains invalid name. Used request inputs: {','.join(sorted(seen))}, "
                               f"request input: {','.join(sorted(request_inputs))}")
    return inputs


def _fill_spec(model_spec, servable: Servable, signature_name: str = "") -> None:
    model_spec.name = servable.name
    model_spec.version.value = servable.version
    if signature_name:
        model_spec.signature_name = signature_name


def predict_outputs(servable: Servable, request: predict_pb2.PredictRequest, check_method: bool = False,
                    timeout_ms: int = 0, arrays: Optional[Dict[str, np.ndarray]] = None) -> tuple:
    """predict_util.cc RunPredict / PreProcessPrediction: (signature name, {alias: array}).
    `arrays`: the request's inputs already as arrays (REST), instead of its TensorProtos."""
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    if name not in servable.signature_defs:
        raise failed_precondition(f'Serving signature key "{name}" not found.')
    signature = servable.signature_defs[name]
    if check_method and signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise ServingError(grpc.StatusCode.INTERNAL, "Expected prediction signature method_name to be one of "
                           f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}")
    sent, expected = set(request.inputs if arrays is None else arrays), set(signature.inputs)
    if len(sent) > len(expected) or (len(sent) < len(expected) and not signature.defaults):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sorted(sent))}}})"
            f" != len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
    inputs = _input_values(signature, request.inputs) if arrays is None else arrays
    aliases = list(request.output_filter)
    seen = set()
    for alias in aliases:
        if alias not in signature.outputs:
            raise invalid_argument(f"output tensor alias not found in signature: {alias} Outputs expected to be "
                                   f"in the set {{{','.join(sorted(signature.outputs))}}}.")
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    check_dtypes(signature, inputs)
    outputs = _timed_run(servable, "Predict", request.model_spec.name, name, inputs, timeout_ms)
    return name, {alias: outputs[alias] for alias in (aliases or sorted(signature.outputs))}


def _timed_run(servable: Servable, api: str, model_name: str, signature_name: str, inputs, timeout_ms: int):
    """The run, its wall time recorded as runtime_latency (runtime "TF1") when it succeeds."""
    started = time.perf_counter()
    outputs = servable.run(signature_name, inputs, timeout_ms)
    if servable.metrics is not None:
        servable.metrics.observe(RUNTIME_LATENCY, (model_name, api, "TF1"), (time.perf_counter() - started) * 1e6)
    return outputs


def predict(servable: Servable, request: predict_pb2.PredictRequest, check_method: bool = False,
            timeout_ms: int = 0) -> predict_pb2.PredictResponse:
    name, outputs = predict_outputs(servable, request, check_method, timeout_ms)
    response = predict_pb2.PredictResponse()
    _fill_spec(response.model_spec, servable, name)
    for alias, value in outputs.items():
        tensor_proto(value, response.outputs[alias])
    return response


def _examples(request) -> np.ndarray:
    """util.cc InputToSerializedExampleTensor: the request's tf.Examples, serialized; with a
    context, each example is the context's bytes followed by its own (protobuf merges them)."""
    which = request.input.WhichOneof("kind")
    if which == "example_list_with_context":
        context = request.input.example_list_with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in request.input.example_list_with_context.examples]
    else:
        examples = [e.SerializeToString() for e in request.input.example_list.examples]
    if not examples:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(examples), dtype=object)
    array[:] = examples
    return array


def _shape_text(value: np.ndarray) -> str:
    """TensorShape::DebugString: "[2,3]"."""
    return "[" + ",".join(str(d) for d in value.shape) + "]"


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


def _run_examples(servable: Servable, api: str, request, signature_name: str, signature, examples: np.ndarray,
                  timeout_ms: int):
    inputs = {"inputs": examples}
    check_dtypes(signature, inputs)
    return _timed_run(servable, api, request.model_spec.name, signature_name, inputs, timeout_ms)


def regress(servable: Servable, request: regression_pb2.RegressionRequest,
            check_method: bool = False, timeout_ms: int = 0) -> regression_pb2.RegressionResponse:
    """regressor.cc RunRegress, PostProcessRegressionResult."""
    name, signature = _example_signature(servable, request.model_spec, "regression", REGRESS_METHOD,
                                         check_method, (1,))
    if "outputs" not in signature.outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {signature}")
    examples = _examples(request)
    values = _run_examples(servable, "Regress", request, name, signature, examples, timeout_ms)["outputs"]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument("Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                               + _shape_text(values))
    if values.shape[0] != len(examples):
        raise invalid_argument(f"Input batch size did not match output batch size: {len(examples)} vs. "
                               f"{values.shape[0]}")
    if values.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_datatype_name(values)}")
    response = regression_pb2.RegressionResponse()
    _fill_spec(response.model_spec, servable, name)
    response.result.regressions.extend(regression_pb2.Regression(value=float(v)) for v in values.reshape(-1))
    return response


def _datatype_name(value: np.ndarray) -> str:
    """DataType_Name: "DT_DOUBLE"."""
    return types_pb2.DataType.Name(tf.as_dtype(value.dtype if value.dtype != object else tf.string)
                                   .as_datatype_enum)


def classification_rows(servable: Servable, request: classification_pb2.ClassificationRequest,
                        check_method: bool = False, timeout_ms: int = 0) -> tuple:
    """classifier.cc RunClassify, PostProcessClassificationResult: (signature name, rows of
    (label bytes or None, score or None)). Labels stay bytes: the REST answer writes them as they
    are, whatever they hold."""
    name, signature = _example_signature(servable, request.model_spec, "classification", CLASSIFY_METHOD,
                                         check_method, (1, 2))
    if not {"classes", "scores"} & set(signature.outputs):
        raise invalid_argument('Expected classification signature outputs to contain at least one of "classes" '
                               f'or "scores". Signature was: {signature}')
    examples = _examples(request)
    outputs = _run_examples(servable, "Classify", request, name, signature, examples, timeout_ms)
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for label, value, wanted in (("classes", classes, "DT_STRING"), ("scores", scores, "DT_FLOAT")):
        if value is None:
            continue
        if value.ndim != 2:
            raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {_shape_text(value)}")
        if _datatype_name(value) != wanted:
            raise invalid_argument(f"Expected {label} Tensor of {wanted}. Got: {_datatype_name(value)}")
        if value.shape[0] != len(examples):
            raise invalid_argument(f"Expected {label} output batch size of {len(examples)}. Got: {value.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument("Tensors class and score should match in dim_size(1). Got "
                               f"{classes.shape[1]} vs. {scores.shape[1]}")
    width = (classes if classes is not None else scores).shape[1]
    rows = [[(classes[i, c] if classes is not None else None, float(scores[i, c]) if scores is not None else None)
             for c in range(width)] for i in range(len(examples))]
    return name, rows


def classify(servable: Servable, request: classification_pb2.ClassificationRequest,
             check_method: bool = False, timeout_ms: int = 0) -> classification_pb2.ClassificationResponse:
    name, rows = classification_rows(servable, request, check_method, timeout_ms)
    response = classification_pb2.ClassificationResponse()
    _fill_spec(response.model_spec, servable, name)
    for row in rows:
        classifications = response.result.classifications.add()
        for label, score in row:
            entry = classifications.classes.add()
            if label is not None:  # a proto string here; bytes that are not UTF-8 are replaced
                entry.label = label.decode("utf-8", "replace")
            if score is not None:
                entry.score = score
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
    """Loads a version as TF Serving's SavedModelBundle factory does (the MetaGraphDef with the
    configured tags into a session, its init ops run), then batching queues and the warmup replay."""

    def __init__(self, batching_options: Optional[batching.Options], warmup: bool, warmup_iterations: int = 1,
                 tags: Sequence[str] = ("serve",), metrics: Optional[Metrics] = None,
                 session_config: Optional[config_pb2.ConfigProto] = None):
        self.batching_options, self.warmup, self.warmup_iterations = batching_options, warmup, warmup_iterations
        self.tags, self.metrics, self.session_config = list(tags), metrics, session_config

    def load(self, name: str, version: int, path: str) -> Servable:
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=self.session_config)
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(session, self.tags, path)
        except Exception as e:
            session.close()
            if isinstance(e, tf.errors.OpError):
                raise from_tf_error(e) from e
            code = grpc.StatusCode.NOT_FOUND if isinstance(e, (OSError, IOError)) else grpc.StatusCode.INTERNAL
            raise ServingError(code, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:500]}") from e
        servable = Servable(name, version, path, session, dict(meta_graph.signature_def), metrics=self.metrics)
        if self.batching_options is not None:
            servable.queues = {key: batching.Queue(self.batching_options, self._executor(servable, key),
                                                   f"{name}-{version}-{key}") for key in servable.signature_defs}
        if self.warmup:
            try:
                self._warm_up(servable)
            except Exception:
                self.unload(servable)
                raise
        return servable

    @staticmethod
    def _executor(servable: Servable, signature_name: str) -> Callable:
        return lambda inputs, timeout_ms: servable.execute(signature_name, inputs, timeout_ms)

    def _warm_up(self, servable: Servable) -> None:
        for log in warmup_records(servable.path):
            for _ in range(self.warmup_iterations):
                replay_warmup(servable, log)

    @staticmethod
    def unload(servable: Servable) -> None:
        for queue in (servable.queues or {}).values():
            queue.stop()
        servable.session.close()


def _servable_request(model_spec) -> tuple:
    """server_core.cc ServableRequestFromModelSpec: (name, version or None, label)."""
    if not model_spec.name:
        raise invalid_argument("ModelSpec has no name specified.")
    return model_spec.name, _version(model_spec), model_spec.version_label


def _version(model_spec):
    return model_spec.version.value if model_spec.WhichOneof("version_choice") == "version" else None


class Core:
    """The APIs on a repository, shared by the gRPC and REST entry points."""

    def __init__(self, repository: ModelRepository, metrics: Metrics, check_method_names: bool = False):
        self.repository, self.metrics, self.check_method_names = repository, metrics, check_method_names

    def servable(self, model_spec) -> Servable:
        """server_core.cc ServableRequestFromModelSpec, then the repository's lookup."""
        return self.repository.get(*_servable_request(model_spec))

    def _requested(self, request):
        """predict_impl.cc / regression_service.cc / classification_service.cc: a request without
        a ModelSpec is refused before any lookup; the servable is held while the request runs."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        return self.repository.handle(*_servable_request(request.model_spec))

    def predict_arrays(self, request, arrays: Dict[str, np.ndarray], timeout_ms: int = 0) -> tuple:
        with self._requested(request) as servable:
            return predict_outputs(servable, request, self.check_method_names, timeout_ms, arrays)

    def predict(self, request, timeout_ms: int = 0):
        with self._requested(request) as servable:
            return predict(servable, request, self.check_method_names, timeout_ms)

    def regress(self, request, timeout_ms: int = 0):
        with self._requested(request) as servable:
            return regress(servable, request, self.check_method_names, timeout_ms)

    def classify(self, request, timeout_ms: int = 0):
        with self._requested(request) as servable:
            return classify(servable, request, self.check_method_names, timeout_ms)

    def classification_rows(self, request, timeout_ms: int = 0) -> tuple:
        with self._requested(request) as servable:
            return classification_rows(servable, request, self.check_method_names, timeout_ms)

    def metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """get_model_metadata_impl.cc: every SignatureDef of the MetaGraphDef."""
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


MESSAGE_LIMIT = 1024  # grpc_status_util.cc ToGRPCStatus: kErrorMessageLimit


def grpc_message(message: str) -> str:
    """ToGRPCStatus: messages over 1,024 characters are cut there and marked "...TRUNCATED"."""
    return message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT] + "...TRUNCATED"


def _grpc_method(api: str, call, counted: bool):
    """A servicer method: TF Serving's status on failure; request count and latency as
    prediction_service_impl.cc records them (Predict, Classify, Regress only)."""
    def method(self, request, context):
        started = time.perf_counter()
        try:
            response = call(self.core, request)
        except Exception as e:
            error = from_tf_error(e)
            if error.code == grpc.StatusCode.INTERNAL:
                logging.exception("%s failed", api)
            if counted:
                self.core.metrics.count_request(request.model_spec.name, error.code_name)
            context.abort(error.code, grpc_message(error.message))
        if counted:
            self.core.metrics.count_request(request.model_spec.name, "OK")
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


# model_servers/server.cc: builder.SetMaxMessageSize(tensorflow::kint32max), for requests and answers.
MAX_MESSAGE_BYTES = 2 ** 31 - 1
HEALTH_SERVICES = ("ModelService", "PredictionService")  # server.cc: SetServingStatus(..., true)


def session_config(config: Optional[config_pb2.ConfigProto], parallelism: int, intra: int,
                   inter: int) -> config_pb2.ConfigProto:
    """server.cc BuildAndStart's SessionBundleConfig.session_config: the file's ConfigProto with
    the thread flags applied (intra/inter if either is set, else --tensorflow_session_parallelism)."""
    config = config_pb2.ConfigProto() if config is None else config
    if intra > 0 or inter > 0:
        config.intra_op_parallelism_threads, config.inter_op_parallelism_threads = intra, inter
    else:
        config.intra_op_parallelism_threads = config.inter_op_parallelism_threads = parallelism
    return config


def server_credentials(ssl_config) -> Optional[grpc.ServerCredentials]:
    """server.cc BuildServerCredentials: insecure without --ssl_config_file, else TLS with the
    SSLConfig's key, certificate, custom CA and client verification."""
    if ssl_config is None:
        return None
    return grpc.ssl_server_credentials([(ssl_config.server_key.encode(), ssl_config.server_cert.encode())],
                                       root_certificates=ssl_config.custom_ca.encode() or None,
                                       require_client_auth=ssl_config.client_verify)


def make_grpc_server(core: Core, addresses: Sequence[str], workers: int = 16,
                     channel_arguments: Sequence[tuple] = (), credentials: Optional[grpc.ServerCredentials] = None,
                     health: bool = False) -> grpc.Server:
    """The gRPC server: messages up to 2 GiB each way as server.cc allows, --grpc_max_threads
    workers, --grpc_channel_arguments passed on, the TCP port and/or UNIX socket, and with
    --enable_grpc_healthcheck_service the standard grpc.health.v1 service ("", ModelService and
    PredictionService SERVING)."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES), *channel_arguments]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=max(workers, 1)), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    if health:
        from grpc_health.v1 import health as grpc_health, health_pb2, health_pb2_grpc
        servicer = grpc_health.HealthServicer()
        for service in ("", *HEALTH_SERVICES):
            servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for address in addresses:
        port = (server.add_secure_port(address, credentials) if credentials is not None
                else server.add_insecure_port(address))
        if port == 0:
            raise OSError(f"cannot listen on {address}")
    return server
