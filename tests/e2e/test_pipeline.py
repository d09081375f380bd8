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
        "eda",
        "reference",
        "train_gan",
        "synthesize",
        "fuse",
        "train",
        "evaluate",
        "explain",
        "export",
    ]
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "results"], repo, env)

    exp = sh([*dvc, "exp", "run", "-S", "mixup=0.3"], repo, env)
    assert ran(exp) == ["check_params", "train", "evaluate", "explain", "export"]
    diff = json.loads(sh([*dvc, "metrics", "diff", "--json"], repo, env))
    assert set(diff) <= {"metrics/headline.json"}, f"only the headline is a metric: {diff}"
    changed = diff.get("metrics/headline.json", {})
    assert changed, f"no test metric changed: {diff}"
    assert all(v["old"] != v["new"] for v in changed.values())
    details = json.loads(
        sh([*dvc, "metrics", "diff", "--json", "--targets", "metrics/eval.json"], repo, env)
    )
    assert details.get("metrics/eval.json"), f"the details diff is empty: {details}"
    # The plain commands lead with AUC and accuracy (--all: a tiny run may leave one unchanged,
    # and plain `metrics diff` hides unchanged rows).
    rows = sh([*dvc, "metrics", "diff", "--all"], repo, env).splitlines()
    assert [r.split()[1] for r in rows[1:3]] == ["accuracy", "auc"], rows
    columns = sh([*dvc, "exp", "show", "--md", "--no-pager"], repo, env).splitlines()[0]
    assert [c.strip() for c in columns.strip("|").split("|")][2:4] == ["accuracy", "auc"]

    assert ran(sh([*dvc, "repro"], repo, env)) == []

    # Every stage execution logged to the default store at the repo root.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    every = client.search_runs([client.get_experiment_by_name("pneumogan").experiment_id])
    runs = [r for r in every if r.data.tags["stage"] != "pipeline"]
    stages = sorted(r.data.tags["stage"] for r in runs)
    logged = [s for s in (*ran(first), *ran(exp)) if s != "check_params"]  # validates only
    assert stages == sorted(logged)
    # Each stage run is named after its DVC experiment and its stage.
    names = {r.info.run_name for r in runs}
    assert names == {f"{r.data.tags['dvc_experiment']} · {r.data.tags['stage']}" for r in runs}
    assert "workspace · evaluate" in names and len([n for n in names if "evaluate" in n]) == 2
    assert {r.data.tags["dvc_experiment"] for r in runs if r.data.tags["stage"] == "train"} >= {
        "workspace"
    }
    # One parent run per dvc command, every stage run nested in it; the parent holds all params.
    parents = {r.info.run_id: r for r in every if r.data.tags["stage"] == "pipeline"}
    assert len(parents) == 2
    children: dict[str, list[str]] = {}
    for r in runs:
        children.setdefault(r.data.tags["mlflow.parentRunId"], []).append(r.data.tags["stage"])
    assert set(children) == set(parents)
    by_mixup = {parents[k].data.params["mixup"]: sorted(v) for k, v in children.items()}
    assert by_mixup == {"0.2": sorted(ran(first)[1:]), "0.3": sorted(ran(exp)[1:])}
    # Each parent is closed by its watcher, seconds after its dvc command has exited.
    import time

    deadline = time.monotonic() + 120
    while "RUNNING" in (status := {client.get_run(k).info.status for k in parents}):
        assert time.monotonic() < deadline, "a parent run is still RUNNING"
        time.sleep(1)
    assert status == {"FINISHED"}
    assert all(p.data.params["train.epochs"] == "2" for p in parents.values())
    # The evaluate run carries the params that made its model, and logs it as an MLflow model.
    evaluated = [r for r in runs if r.data.tags["stage"] == "evaluate"]
    for r in evaluated:
        assert {"mixup", "fuse.method", "train.lr", "gan.epochs", "evaluate.threshold"} <= set(
            r.data.params
        )
    versions = client.search_model_versions("name = 'pneumogan-classifier'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {r.info.run_id for r in evaluated}
