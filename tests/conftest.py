"""Tiny generated data and params shared by the tests; the real dataset is never needed here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

# pytest-xdist runs one worker per core: one thread each keeps torch from oversubscribing them
# (in this process and in the dvc subprocesses of the end-to-end tests).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# On some 2-core AMD EPYC VMs, torch 2.13's oneDNN AVX2 convolution kernels crash the process
# at random in the backward pass of these tiny networks (SIGABRT/SIGBUS; the kernel logs a
# stack-segment trap inside libtorch_cpu's oneDNN code). Its SSE4.1 kernels do not; the tests
# check behaviour, not speed, so they run those (in this process and in dvc's subprocesses).
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "SSE41")

ROOT = Path(__file__).resolve().parents[1]
SPLIT_COUNTS = {"train": (12, 36), "val": (6, 10), "test": (6, 10)}  # (normal, pneumonia)


def make_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Noise plus a bright disc for pneumonia, so a classifier has something to learn."""
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2).astype(float)
    base = rng.normal(90, 25, size=(labels.size, size, size))
    images = base + 80 * labels[:, None, None] * disc
    return np.clip(images, 0, 255).astype(np.uint8)


def make_medmnist(seed: int = 0, size: int = 28) -> dict[str, np.ndarray]:
    """A MedMNIST-format dict (train/val/test images, (N, 1) labels), classes imbalanced."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, (n0, n1) in SPLIT_COUNTS.items():
        labels = rng.permutation(np.r_[np.zeros(n0), np.ones(n1)].astype(np.uint8))
        out[f"{split}_images"] = make_images(labels, rng, size)
        out[f"{split}_labels"] = labels[:, None]
    return out


def tiny_classifier(seed: int = 0):
    """A random resnet_small of width 4 at 28 px: what the model-file tests predict with."""
    import torch

    from pneumogan.classify.checkpoint import Classifier
    from pneumogan.classify.nets import ClassifierConfig, build
    from pneumogan.core.transforms import ImageTransform

    torch.manual_seed(seed)
    cfg = ClassifierConfig("resnet_small", 28, 4)
    return Classifier(build(cfg).eval(), cfg, ImageTransform(size=28), {})


def make_xrays(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Chest-X-ray-like images: a bright body on a dark ground, two darker lungs, soft texture;
    pneumonia a haze in one lung. What the input gate's tests fit it on."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(c, c, indexing="ij")
    out = []
    for label in labels:
        image = 30 + 140 * ((y / 1.1) ** 2 + (x / 0.85) ** 2 < 1) + 20 * y
        for side in (-1, 1):
            cx = side * rng.uniform(0.3, 0.42)
            lung = ((y + 0.1) / rng.uniform(0.5, 0.65)) ** 2 + ((x - cx) / 0.25) ** 2 < 1
            image = np.where(lung, image - rng.uniform(70, 90), image)
        if label:
            cx = rng.choice([-1, 1]) * 0.35
            image = image + 50 * np.exp(
                -(((y - rng.uniform(-0.2, 0.2)) ** 2 + (x - cx) ** 2) / 0.05)
            )
        image = image + rng.normal(0, 6, image.shape) + rng.uniform(-15, 15)
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(out)


def xray_split(n: int, rng: np.random.Generator, size: int = 28):
    """(images, labels) of `make_xrays`, a third of them normal."""
    labels = rng.permutation(np.r_[np.zeros(n // 3), np.ones(n - n // 3)].astype(np.int64))
    return make_xrays(labels, rng, size), labels


def tiny_gated_classifier(seed: int = 0, pass_rate: float = 0.99):
    """`tiny_classifier` with an input gate fitted on X-ray-like images (`make_xrays`)."""
    from pneumogan.classify.train import with_gate

    rng = np.random.default_rng(seed)
    return with_gate(
        tiny_classifier(seed), xray_split(96, rng), xray_split(48, rng), pass_rate, batch_size=64
    )


def tiny_classifier_file(path: Path) -> Path:
    from pneumogan.classify.checkpoint import save_classifier

    save_classifier(path, tiny_classifier())
    return path


@pytest.fixture
def model_file(tmp_path) -> Path:
    """A tiny classifier checkpoint (see tiny_classifier)."""
    return tiny_classifier_file(tmp_path / "clf.safetensors")


@pytest.fixture
def gated_model_file(tmp_path) -> Path:
    """A tiny classifier checkpoint with an input gate (see tiny_gated_classifier)."""
    from pneumogan.classify.checkpoint import save_classifier

    save_classifier(tmp_path / "gated.safetensors", tiny_gated_classifier())
    return tmp_path / "gated.safetensors"


@pytest.fixture(scope="session")
def tiny_raw_dir(tmp_path_factory) -> Path:
    """A directory holding a tiny pneumoniamnist.npz, as PNEUMOGAN_DATA_DIR would name."""
    d = tmp_path_factory.mktemp("raw_copy")
    np.savez(d / "pneumoniamnist.npz", **make_medmnist())
    return d


def tiny_params() -> dict:
    """The real params.yaml with every expensive knob turned down."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["reference"].update(width=4, epochs=1, batch_size=16, device="cpu")
    params["gan"].update(
        latent_dim=8, width=4, epochs=2, batch_size=8, sample_every=1, eval_every=1, device="cpu"
    )
    params["synthesize"].update(batch_size=16, nearest_k=3, kid_subsets=5)
    params["train"].update(width=4, epochs=2, batch_size=16, patience=2, device="cpu")
    params["evaluate"].update(batch_size=16, register_min_val_auc=0.0)  # tiny models register too
    params["split"].update(min_images=0)  # tiny val and test splits are kept as they are
    # every stage does real work on the tiny pipeline (the GAN ones run only for `gan`);
    # test_dag checks the other methods' stand-ins
    params["fuse"].update(method="gan")
    return params


@pytest.fixture
def params_file(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params()))
    return path


@pytest.fixture(autouse=True, scope="session")
def _mlflow_store(tmp_path_factory):
    """One throw-away MLflow store for the whole session (creating a SQLite store is slow)."""
    mp = pytest.MonkeyPatch()
    store = tmp_path_factory.mktemp("mlflow")
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    mp.setenv("DVC_ROOT", str(store))
    yield store
    mp.undo()


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may reach the network or the user's medmnist cache."""
    from pneumogan.data import medmnist

    monkeypatch.setattr(medmnist, "MEDMNIST_CACHE", tmp_path / "no-medmnist-cache")
    monkeypatch.delenv(medmnist.DATA_DIR_ENV, raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", no_network)


def sh(cmd: list[str], cwd: Path, env: dict, timeout: int = 1200) -> str:
    """Run a command, failing on a non-zero exit; the timeout only catches a hang (two test
    workers share two cores in CI, so a tiny pipeline can take minutes)."""
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def ran(log: str) -> list[str]:
    """Stages that `dvc repro` / `dvc exp run` executed, in order."""
    return re.findall(r"Running stage '(\w+)'", log)


def make_repo(tmp_path: Path, raw_dir: Path) -> tuple[Path, dict]:
    """A committed git + DVC repo with the real dvc.yaml and code, tiny params and data."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "data/source").mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore", "data/.gitignore", "data/source/README.md"):
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
        PNEUMOGAN_DATA_DIR=str(raw_dir),
        GIT_AUTHOR_NAME="t",
        GIT_COMMITTER_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_EMAIL="t@t",
        DVC_NO_ANALYTICS="1",
    )
    dvc = [sys.executable, "-m", "dvc"]
    sh(["git", "init", "-q"], repo, env)
    sh([*dvc, "init", "-q"], repo, env)
    shutil.copy(ROOT / ".dvc/config", repo / ".dvc/config")  # the project's DVC settings
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "pipeline"], repo, env)
    return repo, env
