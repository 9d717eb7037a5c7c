"""Stand-in for the entrypoint of Beam's Python SDK container (`/opt/apache/beam/boot`, Beam's
sdks/python/container/boot.go, `main`), which Flink, Spark and Dataflow workers run; this machine
has no Docker engine to run the real image. Beam's worker pool (`worker_pool_main
--container_executable=...`) starts it once per SDK worker, per the container contract:

1. ask the provision service for the job's pipeline options and staged dependencies;
2. fetch each staged file from the artifact service (the `--setup_file` sdist arrives as
   `workflow.tar.gz`) and pip-install it (boot.go's `installSetupPackages`);
3. exec `python -m apache_beam.runners.worker.sdk_worker_main` with the endpoints in its
   environment (WORKER_ID, PIPELINE_OPTIONS, SEMI_PERSISTENT_DIRECTORY, LOGGING_/CONTROL_/
   STATUS_API_SERVICE_DESCRIPTOR).

Differences, and why: each worker installs into a folder of its own under $BEAM_BOOT_DIR (the real
image shares /tmp/staged between the workers of a pool behind a lock file), with `--no-deps`
(the real image installs dependencies; here the interpreter already has the locked stack, as
our Dockerfile's image does). It records, per worker, its pid, the staged files and where the
worker's `components` package comes from, for the tests to check.
"""
import argparse
import json
import os
import subprocess
import sys

import grpc
from apache_beam.portability.api import (beam_artifact_api_pb2, beam_artifact_api_pb2_grpc,
                                         beam_provision_api_pb2, beam_provision_api_pb2_grpc,
                                         beam_runner_api_pb2, endpoints_pb2)
from google.protobuf import json_format, text_format

RECORD_FILE = "workers.jsonl"
WORKFLOW_FILE = "workflow.tar.gz"  # what Beam's stager calls the --setup_file sdist


def _descriptor(url: str) -> str:
    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint", "control_endpoint"):
        parser.add_argument(f"--{flag}", required=True)
    args = parser.parse_args()
    boot_dir = os.environ.get("BEAM_BOOT_DIR", "/tmp")
    worker_dir = os.path.join(boot_dir, f"worker-{args.id}")
    staged, site = os.path.join(worker_dir, "staged"), os.path.join(worker_dir, "site")
    os.makedirs(staged)
    metadata = [("worker_id", args.id)]

    info = beam_provision_api_pb2_grpc.ProvisionServiceStub(grpc.insecure_channel(args.provision_endpoint)) \
        .GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=metadata).info
    retrieval = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(grpc.insecure_channel(args.artifact_endpoint))
    names = []
    for dependency in info.dependencies:
        name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload).staged_name
        with open(os.path.join(staged, name), "wb") as f:
            for chunk in retrieval.GetArtifact(beam_artifact_api_pb2.GetArtifactRequest(artifact=dependency),
                                               metadata=metadata):
                f.write(chunk.data)
        names.append(name)
    if WORKFLOW_FILE in names:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", site, os.path.join(staged, WORKFLOW_FILE)],
                       check=True, stdout=sys.stderr)

    env = dict(os.environ, WORKER_ID=args.id, PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
               SEMI_PERSISTENT_DIRECTORY=worker_dir, LOGGING_API_SERVICE_DESCRIPTOR=_descriptor(args.logging_endpoint),
               CONTROL_API_SERVICE_DESCRIPTOR=_descriptor(args.control_endpoint), PYTHONPATH=site)
    if info.HasField("status_endpoint"):
        env["STATUS_API_SERVICE_DESCRIPTOR"] = text_format.MessageToString(info.status_endpoint)
    found = subprocess.run([sys.executable, "-c", "import components; print(components.__file__)"], env=env,
                           cwd=worker_dir, capture_output=True, text=True)
    with open(os.path.join(boot_dir, RECORD_FILE), "a") as record:
        record.write(json.dumps({"worker_id": args.id, "pid": os.getpid(), "ppid": os.getppid(), "staged": sorted(names),
                                 "components": found.stdout.strip() or found.stderr.strip()[-500:],
                                 "site": site, "TF_USE_LEGACY_KERAS": os.environ.get("TF_USE_LEGACY_KERAS")}) + "\n")
    os.chdir(worker_dir)
    os.execve(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"], env)


if __name__ == "__main__":
    main()
