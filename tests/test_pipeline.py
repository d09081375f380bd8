"""End to end: the real dvc.yaml in a temp git repo with tiny params and tiny data."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT, tiny_params


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def ran(log: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", log)


def test_repro_exp_run_metrics_diff(tmp_path, tiny_raw_dir):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    for pkg in ("pneumogan", "stages"):
        shutil.copytree(ROOT / pkg, repo / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT") and not k.startswith("PYTEST")
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        PNEUMOGAN_DATA_DIR=str(tiny_raw_dir),
        GIT_AUTHOR_NAME="t",
        GIT_COMMITTER_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_EMAIL="t@t",
        DVC_NO_ANALYTICS="1",
    )
    dvc = [sys.executable, "-m", "dvc"]
    sh(["git", "init", "-q"], repo, env)
    sh([*dvc, "init", "-q"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "pipeline"], repo, env)

    first = sh([*dvc, "repro"], repo, env)
    assert ran(first) == [
        "download",
        "split",
        "reference",
        "train_gan",
        "synthesize",
        "fuse",
        "train",
        "evaluate",
    ]
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "results"], repo, env)

    exp = sh([*dvc, "exp", "run", "-S", "mixup=0.3"], repo, env)
    assert ran(exp) == ["train", "evaluate"]
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
    assert stages == sorted([*ran(first), *ran(exp)])
    assert {r.data.tags["dvc_experiment"] for r in runs if r.data.tags["stage"] == "train"} >= {
        "workspace"
    }
