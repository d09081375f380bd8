"""End to end: the real dvc.yaml in a temp git repo with tiny params and tiny data."""

import json
import sys

import pytest

from tests.conftest import make_repo, ran, sh


@pytest.mark.slow
def test_repro_exp_run_metrics_diff(tmp_path, tiny_raw_dir):
    repo, env = make_repo(tmp_path, tiny_raw_dir)
    dvc = [sys.executable, "-m", "dvc"]

    first = sh([*dvc, "repro"], repo, env)
    assert ran(first) == [
        "check_params",
        "download",
        "split",
        "reference",
        "train_gan",
        "synthesize",
        "fuse",
        "train",
        "evaluate",
        "explain",
    ]
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "results"], repo, env)

    exp = sh([*dvc, "exp", "run", "-S", "mixup=0.3"], repo, env)
    assert ran(exp) == ["check_params", "train", "evaluate", "explain"]
    diff = json.loads(sh([*dvc, "metrics", "diff", "--json"], repo, env))
    changed = diff.get("metrics/eval.json", {})
    assert changed, f"no test metric changed: {diff}"
    assert all(v["old"] != v["new"] for v in changed.values())

    assert ran(sh([*dvc, "repro"], repo, env)) == []

    # Every stage execution logged to the default store at the repo root.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("pneumogan").experiment_id])
    stages = sorted(r.data.tags["stage"] for r in runs)
    logged = [s for s in (*ran(first), *ran(exp)) if s != "check_params"]  # validates only
    assert stages == sorted(logged)
    assert {r.data.tags["dvc_experiment"] for r in runs if r.data.tags["stage"] == "train"} >= {
        "workspace"
    }
