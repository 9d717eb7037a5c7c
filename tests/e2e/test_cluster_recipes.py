"""The README's cluster recipes, each run here up to the first call that needs a cloud account
or a cluster. Nothing leaves this machine: Google's credential and storage look-ups are pointed
at a closed loopback port, and the object store is the local S3 server (tests/object_store.py).
"""
import json
import pathlib
import tarfile

import apache_beam as beam
import portpicker
import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.portability import flink_runner, spark_runner
from google.protobuf import json_format
from tfx.types import standard_component_specs

from components.example_gen import executor as example_gen
from ratings import features
from ratings import paths
from pipeline import configs, kubeflow_v2_runner
from tests.cli import movierec

from tests.helpers import REPO
# The Vertex recipe's bucket: compile only names it, nothing reads or writes it here.
GCS_BUCKET = "gs://movierec-test-bucket"
# The image the Vertex recipe builds from the Dockerfile and pushes.
IMAGE = "europe-docker.pkg.dev/acme/ml/movierec:1"
# What the recipes' placeholders stand for here.
PLACEHOLDERS = {"PROJECT": "movierec-test", "REGION": "europe-west4", "BUCKET": GCS_BUCKET[len("gs://"):],
                "FLINK_MASTER": "flink.invalid", "SPARK_MASTER": "spark.invalid",
                "./setup.py": str(REPO / "setup.py")}


@pytest.fixture
def no_google_account(monkeypatch):
    """google-auth's metadata-server probe and the Cloud Storage client go to a closed loopback
    port (GCE_METADATA_HOST/_IP and STORAGE_EMULATOR_HOST are the libraries' own settings)."""
    closed = f"127.0.0.1:{portpicker.pick_unused_port()}"
    for name, value in {"GCE_METADATA_HOST": closed, "GCE_METADATA_IP": closed, "NO_GCE_CHECK": "True",
                        "STORAGE_EMULATOR_HOST": f"http://{closed}", "GOOGLE_APPLICATION_CREDENTIALS": ""}.items():
        monkeypatch.setenv(name, value)


def recipe_args(name: str):
    args = yaml.safe_load((REPO / "configs" / "beam" / f"{name}.yaml").read_text())["beam_pipeline_args"]
    for placeholder, value in PLACEHOLDERS.items():
        args = [arg.replace(placeholder, value) for arg in args]
    return args


def ingestion_graph(pipeline: beam.Pipeline, ratings: pathlib.Path, output: str) -> None:
    """ExampleGen's own Beam graph (components/example_gen/executor.write_examples) over the sample."""
    properties = {standard_component_specs.INPUT_BASE_KEY: str(ratings.parent),
                  standard_component_specs.CUSTOM_CONFIG_KEY: json_format.MessageToJson(
                      example_gen.ingest_config(None, None, (0.5, 5.0), "test"))}
    layout = example_gen.SplitLayout([paths.join(output, "Split-train"), paths.join(output, "Split-eval")], [8, 10])
    example_gen.write_examples(pipeline, [(ratings.name, layout)], properties)


def staged_package(environment: beam_runner_api_pb2.Environment) -> pathlib.Path:
    """The local file Beam built from --setup_file and stages as workflow.tar.gz."""
    for artifact in environment.dependencies:
        role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload)
        if role.staged_name == "workflow.tar.gz":
            return pathlib.Path(beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path)
    raise AssertionError(f"no workflow.tar.gz among {environment.dependencies}")


def assert_ships_the_project(package: pathlib.Path) -> None:
    with tarfile.open(package) as tar:
        names = {pathlib.PurePosixPath(name).relative_to(pathlib.PurePosixPath(name).parts[0]).as_posix()
                 for name in tar.getnames() if len(pathlib.PurePosixPath(name).parts) > 1}
    assert {"setup.py", "components/example_gen/executor.py", "pipeline/configs.py", "ratings/schema/schema.pbtxt"} <= names


def test_dataflow_recipe_translates_ingestion_into_a_job(no_google_account, ratings_sample):
    """configs/beam/dataflow.yaml with Beam's --dry_run: DataflowRunner validates the options,
    translates the graph for runner v2, builds the job and the package --setup_file ships, and
    stops where it would stage to gs:// and submit (DataflowApplicationClient: credentials)."""
    pipeline = beam.Pipeline(argv=recipe_args("dataflow") + ["--dry_run=True"])
    ingestion_graph(pipeline, ratings_sample, "gs://movierec-test-bucket/pipeline/RatingsExampleGen/examples/1")
    result = pipeline.run()
    assert result.job.proto.type.name == "JOB_TYPE_BATCH"
    options = result.job.options.get_all_options()
    assert (options["project"], options["region"]) == ("movierec-test", "europe-west4")
    assert options["temp_location"].startswith("gs://movierec-test-bucket/beam/tmp/")
    names = {t.unique_name for t in pipeline.runner.proto_pipeline.components.transforms.values()}
    assert {"ReadRatings[0]/ParseChunks", "CheckDuplicates", "WriteSplits[0]"} <= names
    (environment,) = pipeline.runner.proto_pipeline.components.environments.values()
    assert environment.urn == "beam:env:docker:v1"
    assert_ships_the_project(staged_package(environment))


@pytest.mark.parametrize("engine, job_server, jar", [
    ("flink", flink_runner.FlinkJarJobServer, "beam-runners-flink-1.18-job-server-"),
    ("spark", spark_runner.SparkJarJobServer, "beam-runners-spark-3-job-server-")])
def test_flink_and_spark_recipes_build_their_portable_job(ratings_sample, engine, job_server, jar):
    """configs/beam/{flink,spark}.yaml: Beam's portable runner translates the graph with a Docker
    SDK environment that ships this project; the next step, PortableRunner.create_job_service,
    starts Beam's Java job server for the engine, a jar these machines do not have."""
    options = PipelineOptions(recipe_args(engine))
    runner_name = options.view_as(StandardOptions).runner
    pipeline = beam.Pipeline(options=options)
    ingestion_graph(pipeline, ratings_sample, "s3://movierec-test/pipeline/RatingsExampleGen/examples/1")
    runner = {"flink": flink_runner.FlinkRunner, "spark": spark_runner.SparkRunner}[engine]()
    assert runner_name == type(runner).__name__
    proto = runner.get_proto_pipeline(pipeline, options)
    (environment,) = proto.components.environments.values()
    assert environment.urn == "beam:env:docker:v1"
    assert_ships_the_project(staged_package(environment))
    assert jar in job_server(options).path_to_jar()


def test_kubeflow_compile_puts_only_bucket_paths_in_the_pipeline_json(s3_bucket, ratings_sample, tmp_path):
    """The Vertex recipe's compile, with pipeline root and serving dir in a gs:// bucket (Vertex
    writes its outputs to Cloud Storage only) and the data in a bucket compile can read here (an
    S3 server on loopback: no GCS emulator reaches TensorFlow 2.16, tests/object_store.py): no
    local path reaches the JSON the cluster runs (the schema is the image's copy). Vertex's
    PipelineJob then loads the JSON with the gs:// root; creating the schedule is the first call
    that needs an account."""
    paths.register_filesystems(s3_bucket)
    data = paths.join(s3_bucket, "kubeflow-data")
    paths.write_bytes(paths.join(data, features.RATINGS_FILE), ratings_sample.read_bytes())
    result = movierec("compile", "--target", "kubeflow-v2", "--data", data,
                      "--pipeline-root", f"{GCS_BUCKET}/pipeline", "--serving-dir", f"{GCS_BUCKET}/serving",
                      "--image", IMAGE, "--schedule", "0 3 * * *",
                      "--output", tmp_path / "kfp")
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "kfp" / kubeflow_v2_runner.PIPELINE_FILE).read_text()
    assert f"{GCS_BUCKET}/pipeline" in text and f"{GCS_BUCKET}/serving/movierec" in text and data in text
    assert str(REPO) not in text and str(tmp_path) not in text and "gs:/" not in text.replace("gs://", "")
    assert f"{s3_bucket}/pipeline" not in text
    assert f"{configs.IMAGE_SCHEMA_DIR}/{configs.SCHEMA_FILE}" in text

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    schedule = json.loads((tmp_path / "kfp" / kubeflow_v2_runner.SCHEDULE_FILE).read_text())
    job = aiplatform.PipelineJob(display_name="movierec", template_path=str(tmp_path / "kfp" / "pipeline.json"),
                                 pipeline_root=schedule["pipeline_root"], project="movierec-test",
                                 location="europe-west4", credentials=AnonymousCredentials())
    assert job.pipeline_spec["pipelineInfo"]["name"] == "movierec"
    assert job._gca_resource.runtime_config.gcs_output_directory == f"{GCS_BUCKET}/pipeline"
    assert schedule["cron"] == "0 3 * * *"
    # Every component runs in the image the recipe built and pushed (KFP v2's PipelineSpec:
    # deploymentSpec.executors.<id>.container.image, which TFX's step_builder.py
    # `StepBuilder._build_container_spec` sets from KubeflowV2DagRunnerConfig.default_image; the
    # resolvers run in the Vertex service itself and have no container).
    images = {name: executor["container"]["image"] for name, executor in job.pipeline_spec["deploymentSpec"][
        "executors"].items() if "container" in executor}
    assert {"RatingsExampleGen_executor", "Trainer_executor", "Pusher_executor"} <= set(images)
    assert set(images.values()) == {IMAGE}, images
