"""The same pipeline on the other orchestrators: BeamDagRunner over two scheduled days, the
Kubeflow Pipelines v2 / Vertex JSON and the image it runs in; the run lock. (Airflow: test_airflow.py;
LocalDagRunner over scheduled days: test_scheduled_runs.py.)"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from pipeline import configs, kubeflow_v2_runner
from pipeline.pipeline import KUBEFLOW_V2, MODEL_GATE
from tests.cli import movierec
from tests.helpers import PACKAGES, REPO
from tests.pipeline_runs import GATES, Replay, node_ids

IMAGE = "europe-docker.pkg.dev/acme/ml/movierec:1.0"
# Task parameters that name a function of ours for TFX's executors to import (Trainer, Transform).
FUNCTION_PARAMETERS = ("run_fn", "preprocessing_fn")


def settings_file(tmp_path, data):
    path = tmp_path / "settings.yaml"
    path.write_text(configs.to_yaml(configs.PipelineConfig(
        data=str(data), pipeline_root=str(tmp_path / "root"), serving_dir=str(tmp_path / "serving"))))
    return path


def test_beam_dag_runner_schedules_two_days(spans, tmp_path):
    """`movierec run --runner beam` on a folder of spans: day 1 pushes; on day 2, with a new span,
    the run warm-starts from day 1's model, is evaluated against it and pushes a second version."""
    replay = Replay(tmp_path, spans, args=("--runner", "beam"))
    replay.add_span(1)
    first = replay.run()
    assert first.returncode == 0, first.stderr[-3000:]
    summary = replay.summary()
    assert summary.components == {name: "ran" for name in node_ids(replay.config)}
    assert summary.span == 1 and summary.blessed and summary.pushed
    (v1,) = replay.versions()
    replay.add_span(2)
    second = replay.run()
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Warm start: warm-started from" in second.stderr
    summary = replay.summary()
    assert summary.span == 2 and summary.blessed and summary.baseline_metrics
    assert replay.versions() == [v1, int(summary.pushed_version)]


def _unique_keys(pairs):
    """json.load's object_pairs_hook: a key twice in one object fails (json.load keeps the last)."""
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}"
    return dict(pairs)


@pytest.fixture(scope="module")
def kubeflow_spec(ratings_sample, tmp_path_factory):
    """`movierec compile --target kubeflow-v2` on the sample: (pipeline spec, output folder, settings)."""
    output = tmp_path_factory.mktemp("kfp")
    settings = settings_file(output, ratings_sample)
    result = movierec("compile", "--target", "kubeflow-v2", "--config", settings,
                      "--image", IMAGE, "--schedule", "0 3 * * *", "--output", output / "build")
    assert result.returncode == 0, result.stderr[-3000:]
    text = (output / "build" / kubeflow_v2_runner.PIPELINE_FILE).read_text()
    return json.loads(text, object_pairs_hook=_unique_keys), output / "build", configs.load(settings)


def test_kubeflow_v2_pipeline_json(kubeflow_spec):
    spec, output, config = kubeflow_spec
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    # KFP runs each resolver as one task per resolved channel ("<id>-model-resolver", ...).
    resolvers = {"transform_analyzer_cache", "warm_start_model", "latest_blessed_model_resolver"}
    assert {t for t in tasks if not t.startswith(tuple(resolvers))} == node_ids(config, KUBEFLOW_V2) - resolvers
    assert all(any(t.startswith(r) for t in tasks) for r in resolvers)
    after = lambda task: set(tasks[task].get("dependentTasks", []))
    assert "ExampleValidator" in after("ValidationGate") and "ValidationGate" in after("Transform")
    assert "Transform" in after("Trainer") and "warm_start_model-model-resolver" in after("Trainer")
    assert "Trainer" in after("Evaluator") and after("Pusher") == {MODEL_GATE, "InfraValidator", "ServableExport"}
    assert "Evaluator" in after("RatingGate") and GATES | {"Trainer"} == after(MODEL_GATE)
    # Kubeflow v2 has no resolver for every accepted span: the servable knows this run's examples.
    assert after("ServableExport") == {MODEL_GATE, "Trainer", "Transform", "ValidationGate"}
    images = {e["container"]["image"] for e in spec["pipelineSpec"]["deploymentSpec"]["executors"].values()
              if "container" in e}
    assert images == {IMAGE}
    # The container reads the schema the Dockerfile copies into the image, not this checkout's path.
    assert f"{configs.IMAGE_SCHEMA_DIR}/{configs.SCHEMA_FILE}" in json.dumps(spec)
    assert str(REPO / "schema") not in json.dumps(spec)
    schedule = json.loads((output / kubeflow_v2_runner.SCHEDULE_FILE).read_text())
    assert schedule["cron"] == "0 3 * * *" and schedule["max_concurrent_run_count"] == 1


def test_kubeflow_v2_outputs_are_named_once_per_task_and_every_input_names_one(kubeflow_spec):
    """Each component's outputs (artifacts and parameters) have distinct names, and each task's
    input artifact names its producer task and an output that producer declares."""
    spec, _, _ = kubeflow_spec
    components = spec["pipelineSpec"]["components"]
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    for name, component in components.items():
        outputs = component.get("outputDefinitions", {})
        artifacts, parameters = outputs.get("artifacts", {}), outputs.get("parameters", {})
        assert not set(artifacts) & set(parameters), name
    for task_name, task in tasks.items():
        for input_name, spec_input in task.get("inputs", {}).get("artifacts", {}).items():
            source = spec_input["taskOutputArtifact"]
            producer = components[tasks[source["producerTask"]]["componentRef"]["name"]]
            assert source["outputArtifactKey"] in producer["outputDefinitions"]["artifacts"], (task_name, input_name)


def _dockerfile():
    """(WORKDIR, [(sources, destination)] of COPY, {ENV name: value}, RUN commands) of the Dockerfile."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    workdir = [arg.strip() for op, arg in instructions if op == "WORKDIR"][-1]
    copies = [(arg.split()[:-1], arg.split()[-1]) for op, arg in instructions if op == "COPY"]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(arg for op, arg in instructions if op == "ENV")))
    return workdir, copies, env, [arg for op, arg in instructions if op == "RUN"]


IMAGE_PROBE = """
import importlib, json, sys
site, names, packages = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(",")
found = {}
for name in names:
    module, _, attribute = name.rpartition(".")
    found[name] = callable(getattr(importlib.import_module(module), attribute, None))
ours = {m.__name__: getattr(m, "__file__", None) for m in list(sys.modules.values())
        if m.__name__.split(".")[0] in packages}
print(json.dumps({"callable": found, "loaded": len(ours),
                  "not_from_the_install": sorted(n for n, f in ours.items() if not (f or "").startswith(site))}))
"""


def test_kubeflow_v2_executors_import_from_the_image_package(kubeflow_spec, tmp_path):
    """What the image would run: the files the Dockerfile copies, installed as it installs them
    (into a folder here, over the locked dependencies this venv has), and in a fresh process
    outside the checkout, every executor class the pipeline JSON names and every function it passes
    to TFX's executors imports from that install alone."""
    spec, _, _ = kubeflow_spec
    workdir, copies, env, runs = _dockerfile()
    context = tmp_path / "context"
    for sources, destination in copies:
        for source in sources:
            target = context / destination / pathlib.PurePath(source).name if destination.endswith("/") \
                else context / destination
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target)
    assert "pip install --no-cache-dir --no-deps ." in runs  # the project's install step, emulated here:
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                "--target", str(site), str(context)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # The schema the compiled JSON points containers at is where the Dockerfile puts it (with the
    # data-format package it belongs to).
    ratings = dict((tuple(s), d) for s, d in copies)[("ratings",)]
    assert f"{workdir}/{ratings}/schema" == configs.IMAGE_SCHEMA_DIR
    assert (context / ratings / "schema" / configs.SCHEMA_FILE).is_file()

    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    names = [args[args.index("--executor_class_path") + 1] for args in
             (e["container"]["args"] for e in executors.values() if "container" in e)]
    parameters = [task["inputs"]["parameters"][key]["runtimeValue"]["constantValue"]["stringValue"]
                  for task in spec["pipelineSpec"]["root"]["dag"]["tasks"].values()
                  for key in FUNCTION_PARAMETERS if key in task.get("inputs", {}).get("parameters", {})]
    assert any(name.startswith("components.") for name in names) and len(parameters) == len(FUNCTION_PARAMETERS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = subprocess.run([sys.executable, "-c", IMAGE_PROBE, str(site), json.dumps(names + parameters),
                            ",".join(PACKAGES)], cwd=elsewhere, capture_output=True, text=True, timeout=900,
                           env={**os.environ, **env, "PYTHONPATH": str(site)})
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["callable"] == {name: True for name in names + parameters}
    assert result["loaded"] > 0 and result["not_from_the_install"] == []


HOLD_LOCK = """
import sys, time
from movierec.runlock import run_lock
from pipeline import configs
with run_lock(configs.PipelineConfig(pipeline_root=sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_the_same_root_is_refused(ratings_sample, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "root")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = movierec("run", "--data", ratings_sample, "--pipeline-root", tmp_path / "root")
        assert result.returncode == 4
        assert f"another run is using {tmp_path / 'root'} (pid {holder.pid}" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    # A killed holder leaves no stale lock: the next attempt gets past the lock.
    probe = subprocess.run([sys.executable, "-c", HOLD_LOCK.replace("time.sleep(120)", "pass"),
                            str(tmp_path / "root")], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "held"
