"""The same pipeline on other orchestrators: Airflow DAG, Kubeflow Pipelines v2 JSON; run lock."""
import json
import os
import subprocess
import sys

from pipeline import configs, kubeflow_v2_runner
from pipeline.pipeline import KUBEFLOW_V2, LOCAL, MODEL_GATE, create_pipeline
from tests.cli import movierec
from tests.conftest import REPO

GATES = {"RatingGate", "RankingEvaluator", "Baselines", "Yardstick"}


def components(settings, orchestrator=LOCAL):
    """The node IDs of the pipeline these settings build: the pipeline decides, not a list here."""
    return {node.id for node in create_pipeline(configs.load(settings), orchestrator).components}


DAGBAG_PROBE = """
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
dag = bag.dags["movierec"]  # get_dag() would query the metadata database
print(json.dumps({"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()},
                  "schedule": str(dag.schedule_interval), "max_active_runs": dag.max_active_runs,
                  "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}}))
"""


def settings_file(tmp_path, data):
    path = tmp_path / "settings.yaml"
    path.write_text(configs.to_yaml(configs.PipelineConfig(
        data=str(data), pipeline_root=str(tmp_path / "root"), serving_dir=str(tmp_path / "serving"))))
    return path


def test_airflow_dag_loads_with_every_component_in_order(ratings_sample, tmp_path):
    settings = settings_file(tmp_path, ratings_sample)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "MOVIEREC_SCHEDULE": "30 2 * * *",
           "MOVIEREC_CONFIG": str(settings), "PYTHONWARNINGS": "ignore"}
    dag_file = os.path.join(os.path.dirname(configs.__file__), "airflow_dag.py")
    result = subprocess.run([sys.executable, "-c", DAGBAG_PROBE, dag_file], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    dag = json.loads(result.stdout.strip().splitlines()[-1])
    assert dag["errors"] == {}
    assert set(dag["upstream"]) == components(settings) and GATES <= set(dag["upstream"])
    assert dag["schedule"] == "30 2 * * *" and dag["max_active_runs"] == 1
    assert "ValidationGate" in dag["upstream"]["Transform"]
    assert {"last_accepted_statistics", "StatisticsGen"} <= set(dag["upstream"]["ValidationGate"])
    assert set(dag["upstream"]["Pusher"]) == {MODEL_GATE, "InfraValidator", "Trainer"}
    assert set(dag["upstream"]["InfraValidator"]) == {MODEL_GATE, "Trainer"}
    assert GATES | {"Trainer"} == set(dag["upstream"][MODEL_GATE])
    assert {"Trainer", "latest_blessed_model_resolver"} <= set(dag["upstream"]["RankingEvaluator"])
    assert {"Evaluator", "RankingEvaluator"} <= set(dag["upstream"]["Baselines"])


def test_kubeflow_v2_pipeline_json(ratings_sample, tmp_path):
    settings = settings_file(tmp_path, ratings_sample)
    result = movierec("compile", "--target", "kubeflow-v2", "--config", settings,
                      "--image", "europe-docker.pkg.dev/acme/ml/movierec:1.0", "--schedule", "0 3 * * *",
                      "--output", tmp_path / "kfp")
    assert result.returncode == 0, result.stderr[-3000:]
    spec = json.loads((tmp_path / "kfp" / kubeflow_v2_runner.PIPELINE_FILE).read_text())
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    # KFP runs each resolver as one task per resolved channel ("<id>-model-resolver", ...).
    resolvers = {"transform_analyzer_cache", "warm_start_model", "latest_blessed_model_resolver"}
    assert {t for t in tasks if not t.startswith(tuple(resolvers))} == components(settings, KUBEFLOW_V2) - resolvers
    assert all(any(t.startswith(r) for t in tasks) for r in resolvers)
    after = lambda task: set(tasks[task].get("dependentTasks", []))
    assert "ExampleValidator" in after("ValidationGate") and "ValidationGate" in after("Transform")
    assert "Transform" in after("Trainer") and "warm_start_model-model-resolver" in after("Trainer")
    assert "Trainer" in after("Evaluator") and after("Pusher") == {MODEL_GATE, "InfraValidator", "Trainer"}
    assert "Evaluator" in after("RatingGate") and GATES | {"Trainer"} == after(MODEL_GATE)
    images = {e["container"]["image"] for e in spec["pipelineSpec"]["deploymentSpec"]["executors"].values()
              if "container" in e}
    assert images == {"europe-docker.pkg.dev/acme/ml/movierec:1.0"}
    # The container reads the schema the Dockerfile copies into the image, not this checkout's path.
    assert f"{configs.IMAGE_SCHEMA_DIR}/{configs.SCHEMA_FILE}" in json.dumps(spec)
    assert str(REPO / "schema") not in json.dumps(spec)
    schedule = json.loads((tmp_path / "kfp" / kubeflow_v2_runner.SCHEDULE_FILE).read_text())
    assert schedule["cron"] == "0 3 * * *" and schedule["max_concurrent_run_count"] == 1


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
