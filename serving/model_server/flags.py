"""tensorflow_model_server's command line: every flag of model_servers/main.cc (2.16.1), in its
order, with its type and default (server.h Server::Options), parsed by TensorFlow's rules
(tensorflow/core/util/command_line_flags.cc):

- `--name=value` only (no `--name value`); booleans also bare, and only `=true` / `=false`;
  integers as sscanf("%d%c") reads them (the whole value, leading spaces allowed);
- a flag matches by prefix: an argument starting `--<boolean flag name>` is that flag's, and a
  value it cannot read ("--enable_batching=1", "--enable_batchingX") fails the parse;
- a value that does not parse prints the usage and exits 255; `--help` too;
- an unknown argument is reported ("unknown argument: ...") with the usage, and the server
  starts anyway.

Flags that cannot apply to the stand-in (GPU, TPU, TFLite, profiler, ...) are accepted and do
nothing; `NO_OP` says why for each, and `usage()` and docs/tf-serving-rules.md list them.
"""
import dataclasses
import os
import re
from typing import Dict, List, Tuple

CPUS = os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # int32, int64, bool, string, float
    default: object
    help: str


FLAGS = (
    Flag("port", "int32", 8500, "TCP port to listen on for gRPC/HTTP API. Disabled if port set to zero."),
    Flag("grpc_socket_path", "string", "", "If non-empty, listen to a UNIX socket for gRPC API on the given path. "
         "Can be either relative or absolute path."),
    Flag("rest_api_port", "int32", 0, "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API will not "
         "be exported. This port must be different than the one specified in --port."),
    Flag("rest_api_num_threads", "int32", 4 * CPUS, "Number of threads for HTTP/REST API processing. If not set, "
         "will be auto set based on number of CPUs."),
    Flag("rest_api_timeout_in_ms", "int32", 30000, "Timeout for HTTP/REST API calls."),
    Flag("rest_api_enable_cors_support", "bool", False, "Enable CORS headers in response"),
    Flag("enable_batching", "bool", False, "enable batching"),
    Flag("allow_version_labels_for_unavailable_models", "bool", False, "If true, allows assigning unused version "
         "labels to models that are not available yet."),
    Flag("batching_parameters_file", "string", "", "If non-empty, read an ascii BatchingParameters protobuf from "
         "the supplied file name and use the contained values instead of the defaults."),
    Flag("enable_per_model_batching_parameters", "bool", False, "Enables model specific batching params like batch "
         "sizes, timeouts, batching feature flags to be read from `batching_params.pbtxt` file present in "
         "SavedModel dir of the model."),
    Flag("model_config_file", "string", "", "If non-empty, read an ascii ModelServerConfig protobuf from the "
         "supplied file name, and serve the models in that file. (If used, --model_name, --model_base_path are "
         "ignored.)"),
    Flag("model_config_file_poll_wait_seconds", "int32", 0, "Interval in seconds between each poll of the "
         "filesystemfor model_config_file. If unset or set to zero, poll will be done exactly once and not "
         "periodically."),
    Flag("model_name", "string", "default", "name of model (ignored if --model_config_file flag is set)"),
    Flag("model_base_path", "string", "", "path to export (ignored if --model_config_file flag is set, otherwise "
         "required)"),
    Flag("num_load_threads", "int32", 0, "The number of threads in the thread-pool used to load servables."),
    Flag("num_unload_threads", "int32", 0, "The number of threads in the thread-pool used to unload servables."),
    Flag("max_num_load_retries", "int32", 5, "maximum number of times it retries loading a model after the first "
         "failure, before giving up. If set to 0, a load is attempted only once. Default: 5"),
    Flag("load_retry_interval_micros", "int64", 60_000_000, "The interval, in microseconds, between each servable "
         "load retry. If set negative, it doesn't wait. Default: 1 minute"),
    Flag("file_system_poll_wait_seconds", "int32", 1, "Interval in seconds between each poll of the filesystem for "
         "new model version. If set to zero poll will be exactly done once and not periodically. Setting this to "
         "negative value will disable polling entirely."),
    Flag("flush_filesystem_caches", "bool", True, "If true (the default), filesystem caches will be flushed after "
         "the initial load of all servables."),
    Flag("tensorflow_session_parallelism", "int64", 0, "Number of threads to use for running a Tensorflow session. "
         "Auto-configured by default."),
    Flag("tensorflow_session_config_file", "string", "", "If non-empty, read an ascii TensorFlow Session "
         "ConfigProto protobuf from the supplied file name."),
    Flag("tensorflow_intra_op_parallelism", "int64", 0, "Number of threads to use to parallelize the execution of "
         "an individual op. Auto-configured by default."),
    Flag("tensorflow_inter_op_parallelism", "int64", 0, "Controls the number of operators that can be executed "
         "simultaneously. Auto-configured by default."),
    Flag("use_alts_credentials", "bool", False, "Use Google ALTS credentials"),
    Flag("ssl_config_file", "string", "", "If non-empty, read an ascii SSLConfig protobuf from the supplied file "
         "name and set up a secure gRPC channel"),
    Flag("platform_config_file", "string", "", "If non-empty, read an ascii PlatformConfigMap protobuf from the "
         "supplied file name, and use that platform config instead of the Tensorflow platform."),
    Flag("per_process_gpu_memory_fraction", "float", 0.0, "Fraction that each process occupies of the GPU memory "
         "space the value is between 0.0 and 1.0 (with 0.0 as the default)"),
    Flag("saved_model_tags", "string", "serve", "Comma-separated set of tags corresponding to the meta graph def "
         "to load from SavedModel."),
    Flag("grpc_channel_arguments", "string", "", "A comma separated list of arguments to be passed to the grpc "
         "server. (e.g. grpc.max_connection_age_ms=2000)"),
    Flag("grpc_max_threads", "int32", 4 * CPUS, "Max grpc server threads to handle grpc messages."),
    Flag("enable_model_warmup", "bool", True, "Enables model warmup, which triggers lazy initializations (such as "
         "TF optimizations) at load time, to reduce first request latency."),
    Flag("num_request_iterations_for_warmup", "int32", 0, "Number of times a request is iterated during warmup "
         "replay. This value is used only if > 0."),
    Flag("version", "bool", False, "Display version"),
    Flag("monitoring_config_file", "string", "", "If non-empty, read an ascii MonitoringConfig protobuf from the "
         "supplied file name"),
    Flag("remove_unused_fields_from_bundle_metagraph", "bool", True, "Removes unused fields from MetaGraphDef proto "
         "message to save memory."),
    Flag("prefer_tflite_model", "bool", False, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Prefer TensorFlow Lite model "
         "from `model.tflite` file in SavedModel directory."),
    Flag("num_tflite_pools", "int32", CPUS, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number of TFLite interpreters "
         "in an interpreter pool of TfLiteSession."),
    Flag("num_tflite_interpreters_per_pool", "int32", 1, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number of TFLite "
         "interpreters in an interpreter pool of TfLiteSession."),
    Flag("enable_signature_method_name_check", "bool", False, "Enable method_name check for SignatureDef. Disable "
         "this if serving native TF2 regression/classification models."),
    Flag("xla_cpu_compilation_enabled", "bool", False, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Enable XLA:CPU JIT "
         "(default is disabled)."),
    Flag("enable_profiler", "bool", True, "Enable profiler service."),
    Flag("thread_pool_factory_config_file", "string", "", "If non-empty, read an ascii ThreadPoolConfig protobuf "
         "from the supplied file name."),
    Flag("mixed_precision", "string", "", "specify mixed_precision mode"),
    Flag("skip_initialize_tpu", "bool", False, "Whether to skip auto initializing TPU."),
    Flag("enable_grpc_healthcheck_service", "bool", False, "Enable the standard gRPC healthcheck service."),
)

# Accepted, parsed, and without effect here; why.
NO_OP = {
    "allow_version_labels_for_unavailable_models": "version labels are not checked against loaded versions",
    "enable_per_model_batching_parameters": "per-model batching_params.pbtxt is not read; the global file applies",
    "num_load_threads": "versions load one at a time",
    "num_unload_threads": "versions unload one at a time",
    "flush_filesystem_caches": "no filesystem caches to flush (Python file reads)",
    "use_alts_credentials": "ALTS needs Google Cloud; the flag's conflict with --ssl_config_file is still checked",
    "platform_config_file": "only the TensorFlow platform exists here; the file is not read",
    "per_process_gpu_memory_fraction": "no GPU",
    "remove_unused_fields_from_bundle_metagraph": "the MetaGraphDef is kept whole",
    "prefer_tflite_model": "no TensorFlow Lite runtime",
    "num_tflite_pools": "no TensorFlow Lite runtime",
    "num_tflite_interpreters_per_pool": "no TensorFlow Lite runtime",
    "xla_cpu_compilation_enabled": "TensorFlow's own JIT settings apply",
    "enable_profiler": "no profiler service",
    "thread_pool_factory_config_file": "no custom thread pools",
    "mixed_precision": "models run as saved",
    "skip_initialize_tpu": "no TPU",
}
BY_NAME = {flag.name: flag for flag in FLAGS}
_INT_RANGE = {"int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1)}
_SCANF_INT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")
_SCANF_FLOAT = re.compile(r"[ \t\n\v\f\r]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|"
                          r"[ \t\n\v\f\r]*[+-]?(?:inf|infinity|nan)", re.I)


def usage(program: str = "tensorflow_model_server") -> str:
    """Flags::Usage: one line per flag with its default, type and help; no-ops marked."""
    lines = [f"usage: {program}", "Flags:"]
    for flag in FLAGS:
        if flag.kind == "bool":
            shown = f"--{flag.name}={'true' if flag.default else 'false'}"
        elif flag.kind == "string":
            shown = f'--{flag.name}="{flag.default}"'
        elif flag.kind == "float":
            shown = f"--{flag.name}={flag.default:f}"
        else:
            shown = f"--{flag.name}={flag.default}"
        note = f" [movierec serve: no effect, {NO_OP[flag.name]}]" if flag.name in NO_OP else ""
        lines.append(f"\t{shown:<33}\t{flag.kind}\t{flag.help}{note}")
    return "\n".join(lines) + "\n"


def _value(flag: Flag, text: str) -> Tuple[bool, object]:
    """(parsed ok, value) of `text` for a non-boolean flag, as sscanf("%d%c") / ("%f%c") reads it."""
    if flag.kind == "string":
        return True, text
    if flag.kind == "float":
        return (True, float(text)) if _SCANF_FLOAT.fullmatch(text) else (False, None)
    if not _SCANF_INT.fullmatch(text):
        return False, None
    value = int(text)
    low, high = _INT_RANGE[flag.kind]
    return (low <= value <= high), value


def parse(argv: List[str]) -> Tuple[Dict[str, object], List[str], List[str], bool]:
    """Flags::Parse: (values by name, unknown arguments, errors, ok). `ok` is False when a value
    did not parse or the first unknown argument is --help."""
    values = {flag.name: flag.default for flag in FLAGS}
    unknown, errors = [], []
    ok = True
    for position, argument in enumerate(argv):
        if argument == "--":
            unknown.extend(argv[position:])
            break
        found = False
        for flag in FLAGS:
            if not argument.startswith("--" + flag.name):
                continue
            rest = argument[len(flag.name) + 2:]
            if flag.kind == "bool":
                found = True
                if rest in ("", "=true"):
                    values[flag.name] = True
                elif rest == "=false":
                    values[flag.name] = False
                else:
                    errors.append(f"Couldn't interpret value {rest} for flag {flag.name}.")
                    ok = False
                break
            if rest.startswith("="):
                found = True
                parsed, value = _value(flag, rest[1:])
                if parsed:
                    values[flag.name] = value
                else:
                    errors.append(f"Couldn't interpret value {rest[1:]} for flag {flag.name}.")
                    ok = False
                break
        if not found:
            unknown.append(argument)
    return values, unknown, errors, ok and not (unknown and unknown[0] == "--help")


def channel_arguments(text: str) -> List[Tuple[str, object]]:
    """server.cc parseGrpcChannelArgs: "k=v,k2=v2"; values that read as int32 pass as ints."""
    arguments = []
    for item in text.split(",") if text else []:
        key, _, value = item.partition("=")
        parsed, number = _value(BY_NAME["port"], value)
        arguments.append((key, number if parsed else value))
    return arguments


def version_text(tensorflow_version: str) -> str:
    """main.cc --version: TF_Serving_Version() (version.h: 2.16.1 plus a build tag) and TF_Version()."""
    return f"TensorFlow ModelServer: 2.16.1+movierec.stand-in\nTensorFlow Library: {tensorflow_version}\n"
