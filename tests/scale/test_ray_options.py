"""serve-ray's pure parts: deployment options from the settings, the autoscale flag, the
KubeRay manifest's application, and the advice when there is no model (no cluster needed)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chattts_server.server.rayserve import Scale, deployment_options
from chattts_server.settings import Settings

ROOT = Path(__file__).parents[2]


def test_one_replica_takes_a_batch_and_its_queue() -> None:
    opts = deployment_options(Settings(max_batch=4, max_queue=12), Scale(replicas=3))
    assert opts["num_replicas"] == 3 and "autoscaling_config" not in opts
    assert opts["max_ongoing_requests"] == 16
    assert opts["ray_actor_options"]["num_cpus"] == 1.0
    env = opts["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env == {"OMP_NUM_THREADS": "1"}


def test_autoscaling_aims_at_a_full_batch_per_replica() -> None:
    scale = Scale(replicas=1, autoscale=(2, 8), cpus_per_replica=4, gpus_per_replica=1)
    opts = deployment_options(Settings(max_batch=4), scale)
    assert "num_replicas" not in opts
    want = {"min_replicas": 2, "max_replicas": 8, "initial_replicas": 2}
    assert opts["autoscaling_config"] == {**want, "target_ongoing_requests": 4}
    assert opts["ray_actor_options"]["num_gpus"] == 1
    assert opts["ray_actor_options"]["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "4"


@pytest.mark.parametrize("text", ["3", "4:2", "a:b", "-1:2", "0:0", ":"])
def test_autoscale_wants_min_max(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        Scale.parse_autoscale(text)
    assert Scale.parse_autoscale("0:4") == (0, 4)


def test_the_kuberay_manifest_names_a_real_application_builder() -> None:
    doc = yaml.safe_load((ROOT / "deploy/kuberay/rayservice.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayService"
    (app,) = yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"]
    module, _, name = app["import_path"].partition(":")
    builder = getattr(__import__(module, fromlist=[name]), name)
    pytest.importorskip("ray")
    built = builder(app["args"])  # builds the bound deployment (no cluster needed)
    assert type(built).__name__ == "Application"
    env = doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in env["env"]}
    assert {f"CHATTTS_SERVER_{k.upper()}" for k in ("model_dir", "stream_token_secret")} <= names
    assert all(n[15:].lower() in Settings.model_fields for n in names if n.startswith("CHATTTS_"))


def test_serve_ray_without_a_model_exits_with_the_advice(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "chattts_server.cli", "serve-ray", "--model-dir",
         str(tmp_path / "none"), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2
    assert "make-test-model" in r.stderr and "Traceback" not in r.stderr
