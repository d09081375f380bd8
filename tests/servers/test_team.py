"""A team's servers: DVC remotes over SSH and a directory, the run cache, MLflow on PostgreSQL.

Each test starts real servers on localhost (tests/servers.py) and uses two clones of one
project, as two machines would: one git remote (a bare repository) and one DVC remote.
"""

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo, ran, sh
from tests.servers.launch import mlflow_server, postgres, sshd

DVC = [sys.executable, "-m", "dvc"]


def cached(log: str) -> list[str]:
    """Stages DVC restored from its run cache instead of running them."""
    import re

    return re.findall(r"Stage '(\w+)' is cached - skipping run", log)


@pytest.fixture(scope="module")
def origin(tmp_path_factory, tiny_raw_dir):
    """A project that ran its pipeline and one --temp experiment, pushed to a bare git remote."""
    tmp = tmp_path_factory.mktemp("team")
    repo, env = make_repo(tmp, tiny_raw_dir)
    sh([*DVC, "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "results"], repo, env)
    exp = sh([*DVC, "exp", "run", "--temp", "-S", "mixup=0.3", "-n", "mixup-0.3"], repo, env)
    assert "train" in ran(exp)
    bare = tmp / "origin.git"
    sh(["git", "init", "-q", "--bare", str(bare)], tmp, env)
    sh(["git", "remote", "add", "origin", str(bare)], repo, env)
    sh(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo, env)
    return repo, env, bare, tmp


def clone(bare, where, env):
    sh(["git", "clone", "-q", "-b", "main", str(bare), str(where)], where.parent, env)
    return where


def add_remote(repo, env, name, url, keyfile):
    """The remote in the git-ignored .dvc/config.local, with its credential (never committed).

    A team commits the URL to .dvc/config instead; here the experiment's commit predates it.
    """
    sh([*DVC, "remote", "add", "--local", "-d", "-f", name, url], repo, env)
    if keyfile:
        sh([*DVC, "remote", "modify", "--local", name, "keyfile", str(keyfile)], repo, env)


def share_through(remote_url, keyfile, origin, name):
    """Push from the first clone through `remote_url`, pull into a second; check what came."""
    repo, env, bare, tmp = origin
    add_remote(repo, env, name, remote_url, keyfile)
    sh([*DVC, "push", "--run-cache"], repo, env)  # workspace outputs and every run's record
    sh([*DVC, "exp", "push", "origin", "mixup-0.3"], repo, env)  # its git ref and its outputs
    second = clone(bare, tmp / f"second-{name}", env)
    assert not (second / "models/classifier.safetensors").exists()  # git holds no models
    add_remote(second, env, name, remote_url, keyfile)
    sh([*DVC, "pull", "--run-cache"], second, env)
    assert (second / "models/classifier.safetensors").read_bytes() == (
        repo / "models/classifier.safetensors"
    ).read_bytes()
    assert ran(sh([*DVC, "repro"], second, env)) == []  # pulled outputs match dvc.lock
    assert "up to date" in sh([*DVC, "status"], second, env)
    # The run records came too: with a param set the first clone ran, a stage whose outputs
    # are all in the DVC cache is restored instead of run.
    again = sh([*DVC, "exp", "run", "--pull", "-S", "mixup=0.3", "check_params"], second, env)
    assert ran(again) == [] and cached(again) == ["check_params"], again
    sh(["git", "checkout", "--", "."], second, env)
    sh([*DVC, "checkout", "--force"], second, env)
    # The experiment itself: pulled and applied, it is up to date without a run.
    sh([*DVC, "exp", "pull", "origin", "mixup-0.3"], second, env)
    assert "mixup-0.3" in sh([*DVC, "exp", "list", "--name-only"], second, env)
    sh([*DVC, "exp", "apply", "mixup-0.3"], second, env)
    assert ran(sh([*DVC, "repro"], second, env)) == []
    assert (second / "metrics/eval.json").read_text() == sh(
        ["git", "show", f"refs/exps/{exp_ref(repo, env)}:metrics/eval.json"], repo, env
    )
    return second


def exp_ref(repo, env) -> str:
    """The path under refs/exps of the first clone's experiment."""
    refs = sh(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo, env).split()
    (ref,) = [r for r in refs if r.endswith("/mixup-0.3")]
    return ref.removeprefix("refs/exps/")


@pytest.mark.slow
def test_ssh_remote_shares_data_models_and_run_cache(origin, tmp_path):
    with sshd(tmp_path / "sshd") as server:
        store = tmp_path / "dvc-store"
        store.mkdir()
        share_through(server.url(store), server.keyfile, origin, "team-ssh")
        assert any((store / "files").rglob("*")), "nothing arrived on the SSH server"


@pytest.mark.slow
def test_directory_remote_shares_data_models_and_run_cache(origin, tmp_path):
    store = tmp_path / "shared-dir"
    share_through(str(store), None, origin, "team-dir")
    assert (store / "runs").is_dir()  # the run cache's entries


@pytest.mark.slow
def test_queued_experiments_log_to_an_mlflow_server_on_postgresql(tmp_path, tiny_raw_dir):
    import mlflow

    with postgres() as db, mlflow_server(db, tmp_path / "artifacts") as uri:
        repo, env = make_repo(tmp_path, tiny_raw_dir)
        env["MLFLOW_TRACKING_URI"] = uri  # the only thing a client needs: no credentials
        for seed in (1, 2):
            sh([*DVC, "exp", "run", "--queue", "-S", f"seed={seed}", "-n", f"s{seed}"], repo, env)
        sh([*DVC, "exp", "run", "--run-all", "--jobs", "2"], repo, env, timeout=900)
        shown = json.loads(sh([*DVC, "exp", "show", "--json", "--no-fetch"], repo, env))
        names = {e["name"] for rev in shown for e in (rev.get("experiments") or [])}
        assert {"s1", "s2"} <= names

        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("pneumogan")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        stages = {
            "download", "split", "eda", "reference", "train_gan", "synthesize", "fuse", "train",
            "evaluate", "explain", "export",
        }  # fmt: skip
        for name in ("s1", "s2"):
            mine = [r for r in runs if r.data.tags.get("dvc_experiment") == name]
            by_stage = {r.data.tags["stage"]: r for r in mine}
            assert set(by_stage) == stages | {"pipeline"}, name
            parent = by_stage.pop("pipeline")
            assert parent.data.params["seed"] == name[1:]
            assert {r.data.tags["mlflow.parentRunId"] for r in by_stage.values()} == {
                parent.info.run_id
            }
            train, evaluate = by_stage["train"], by_stage["evaluate"]
            assert train.data.params["seed"] == name[1:] and "val_auc" in train.data.metrics
            assert 0 <= evaluate.data.metrics["auc"] <= 1
            assert len(client.get_metric_history(train.info.run_id, "val_auc")) == 2
            artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id)}
            assert {"plots", "eval.json"} <= artifacts
            local = client.download_artifacts(evaluate.info.run_id, "eval.json", str(tmp_path))
            assert json.loads(Path(local).read_text())["auc"] == evaluate.data.metrics["auc"]
        # Artifacts went through the server to its store, not into the project.
        assert any((tmp_path / "artifacts").rglob("classifier.safetensors"))
        assert not (repo / "mlartifacts").exists() and not (repo / "mlflow.db").exists()
        versions = client.search_model_versions("name = 'pneumogan-classifier'")
        assert len(versions) == 2


@pytest.mark.slow
def test_two_machines_split_a_study_and_write_the_same_report(tmp_path, tiny_raw_dir):
    import shutil

    import yaml

    from tests.conftest import ROOT

    repo, env = make_repo(tmp_path, tiny_raw_dir)
    shutil.copytree(ROOT / "scripts", repo / "scripts", ignore=shutil.ignore_patterns("__py*"))
    (repo / "studies").mkdir()
    spec = {"name": "tiny", "seeds": [1, 2], "methods": ["none"], "caps": [], "cap_methods": []}
    (repo / "studies/tiny.yaml").write_text(yaml.safe_dump({**spec, "set": {}}))
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "study"], repo, env)
    bare = tmp_path / "origin.git"
    sh(["git", "init", "-q", "--bare", str(bare)], tmp_path, env)
    sh(["git", "remote", "add", "origin", str(bare)], repo, env)
    sh(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo, env)
    store = str(tmp_path / "dvc-store")
    add_remote(repo, env, "team", store, None)
    study = [sys.executable, "scripts/study.py"]
    tiny = ["--study", "studies/tiny.yaml"]

    # The first machine runs seed 1 and shares it.
    assert "1 to run" in sh([*study, "run", *tiny, "--seeds", "1"], repo, env, timeout=600)
    assert "1 experiments pushed" in sh([*study, "push", *tiny], repo, env)
    # The second pulls it, runs only what is missing, and shares that.
    second = clone(bare, tmp_path / "second", env)
    add_remote(second, env, "team", store, None)
    assert "1 experiments pulled" in sh([*study, "pull", *tiny], second, env)
    log = sh([*study, "run", *tiny], second, env, timeout=600)
    assert "1 already stored with the current pipeline inputs, 1 to run" in log
    sh([*study, "push", *tiny], second, env)
    # The first pulls it and writes the report the second wrote, byte for byte.
    assert "2 experiments pulled" in sh([*study, "pull", *tiny], repo, env)
    sh([*study, "report", *tiny], repo, env)

    def reports(root):
        files = (root / "reports").rglob("*")
        return {p.relative_to(root): p.read_bytes() for p in files if p.is_file()}

    assert reports(repo) == reports(second) and len(reports(repo)) >= 2
