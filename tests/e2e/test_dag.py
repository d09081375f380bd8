"""What reruns when, and what a failed run leaves behind: the real dvc.yaml in a temp repo."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.conftest import make_medmnist, make_repo, ran, sh

pytestmark = pytest.mark.slow
DVC = [sys.executable, "-m", "dvc"]


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def locked_md5(repo, stage: str, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    (out,) = [o for o in lock["stages"][stage]["outs"] if o["path"] == path]
    return out["md5"]


def git_status(repo, env) -> list[str]:
    return sorted(sh(["git", "status", "--porcelain"], repo, env).splitlines())


def failing(cmd, repo, env) -> str:
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode != 0, f"{' '.join(cmd)} should have failed:\n{out.stdout}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_raw_dir):
    """A tiny pipeline, run once and committed (dvc.lock and metrics/ in git)."""
    repo, env = make_repo(tmp_path_factory.mktemp("dag"), tiny_raw_dir)
    sh([*DVC, "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "results"], repo, env)
    return repo, env


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mixup=-1", "params.mixup = -1.0: out of range"),
        ("train.epochs=0", "params.train.epochs = 0: out of range"),
        ("fuse.method=smote", "params.fuse.method = 'smote': must be one of"),
        ("seed=abc", "params.seed = 'abc': expected int"),
        ("fuse.target_ratio=1.5", "params.fuse.target_ratio = 1.5: out of range"),
    ],
)
def test_rejected_param_loses_nothing(repo, override, message):
    repo, env = repo
    model = repo / "models/classifier.safetensors"
    log = failing([*DVC, "exp", "run", "-S", override], repo, env)
    assert message in log
    assert ran(log) == ["check_params"]  # nothing expensive was touched
    # params.yaml keeps the rejected value; DVC's workspace stash can leave git's index
    # believing it unchanged, so git status may or may not list it. Nothing else changed.
    assert set(git_status(repo, env)) <= {" M params.yaml"}
    assert md5(model) == locked_md5(repo, "train", "models/classifier.safetensors")
    head = sh(["git", "show", "HEAD:params.yaml"], repo, env)
    assert (repo / "params.yaml").read_text() != head
    (repo / "params.yaml").write_text(head)
    # The slices come back from DVC's run cache; every other stage was never touched.
    assert ran(sh([*DVC, "repro"], repo, env)) == []
    assert git_status(repo, env) == []


def test_forced_download_of_a_bad_file_keeps_the_last_good_copy(repo, tmp_path):
    repo, env = repo
    raw = make_medmnist()
    raw["train_labels"] = raw["train_labels"] + 5
    np.savez(tmp_path / "pneumoniamnist.npz", **raw)
    log = failing(
        [*DVC, "repro", "-f", "-s", "download"], repo, {**env, "PNEUMOGAN_DATA_DIR": str(tmp_path)}
    )
    assert "label values" in log
    assert git_status(repo, env) == []
    status = json.loads(sh([*DVC, "status", "--json"], repo, env))
    assert status == {}, status


def test_editing_a_figure_reruns_no_training(repo):
    repo, env = repo
    figures = repo / "pneumogan/report/figures.py"
    before = figures.read_text()
    figures.write_text(before.replace("fontsize=7)", "fontsize=8)"))
    try:
        changed = set(json.loads(sh([*DVC, "status", "--json"], repo, env)))
        assert changed == {"eda", "evaluate", "explain"}
    finally:
        figures.write_text(before)


def test_same_reference_weights_leave_the_gan_cached(repo):
    repo, env = repo
    assert ran(sh([*DVC, "repro", "-f", "-s", "reference"], repo, env)) == ["reference"]
    assert json.loads(sh([*DVC, "status", "--json"], repo, env)) == {}
    assert git_status(repo, env) == []


def test_no_gan_training_without_the_gan_method(repo):
    repo, env = repo
    log = sh([*DVC, "exp", "run", "-S", "fuse.method=none", "-S", "seed=7"], repo, env)
    assert {"reference", "train_gan", "synthesize"} <= set(ran(log))
    assert log.count("skipped: not trained") == 3
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pneumogan")
    trained = client.search_runs([exp.experiment_id], "tags.stage = 'train_gan'")
    assert len(trained) == 1  # the committed run's only
    # A second method without the GAN reuses the stand-ins: nothing GAN-related reruns.
    log = sh([*DVC, "exp", "run", "-S", "fuse.method=oversample", "-S", "seed=7"], repo, env)
    assert not {"reference", "train_gan", "synthesize"} & set(ran(log))
    (repo / "params.yaml").write_text(sh(["git", "show", "HEAD:params.yaml"], repo, env))
    sh([*DVC, "checkout", "-f"], repo, env)
