"""CNN classifier: a compact residual net for 28 px, or a torchvision ResNet; mixup training."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from pneumogan.io import CHECKPOINT_ERRORS, DataError, atomic_path
from pneumogan.runtime import progress


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything needed to rebuild the network; saved inside the checkpoint."""

    arch: str
    size: int
    width: int


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem + three residual stages (width, 2·width, 4·width), strides 1, 2, 2; one logit out."""

    def __init__(self, width: int, size: int) -> None:
        super().__init__()
        # Larger images get a strided stem so the feature maps stay about 28 px.
        stem_stride = max(1, size // 28)
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 4 * width, 2),
        )
        self.head = nn.Linear(4 * width, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate layer (4·width numbers per image)."""
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1)


class TorchvisionResNet(nn.Module):
    """torchvision's ResNet-18/34 from scratch, with a one-channel stem and one logit."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None, num_classes=1)
        net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def build(cfg: ClassifierConfig) -> nn.Module:
    if cfg.arch == "resnet_small":
        return SmallResNet(cfg.width, cfg.size)
    if cfg.arch in ("resnet18", "resnet34"):
        return TorchvisionResNet(cfg.arch)
    raise ValueError(f"unknown classifier arch {cfg.arch!r}")


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W → float N×1×H×W, scaled to [-1, 1]."""
    return torch.from_numpy(images).float().div(127.5).sub(1.0).unsqueeze(1)


def augment(
    x: torch.Tensor, max_shift: float, max_rotate: float, generator: torch.Generator
) -> torch.Tensor:
    """Per-image random rotation (±max_rotate degrees) and shift (±max_shift of the side)."""
    if max_shift == 0 and max_rotate == 0:
        return x
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_rotate)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 2 * max_shift  # grid is [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018): convex mix of shuffled pairs, λ ~ Beta(α, α); α = 0 is off."""
    if alpha <= 0:
        return x, y
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


@torch.no_grad()
def predict_proba(
    model: nn.Module, images: np.ndarray, *, batch_size: int, device: torch.device | str = "cpu"
) -> np.ndarray:
    """P(pneumonia) for each image."""
    model.eval()
    x = to_input(images)
    out = [
        torch.sigmoid(model(x[i : i + batch_size].to(device))).cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def _bce(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_classifier(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: ClassifierConfig,
    *,
    mixup_alpha: float,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    max_shift: float,
    max_rotate: float,
    seed: int,
    generator: torch.Generator,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
) -> tuple[nn.Module, dict[str, float]]:
    """AdamW + cosine schedule; keep the weights of the epoch with the best validation AUC."""
    model = build(cfg).to(device)
    x_all, y_all = to_input(train[0]), torch.from_numpy(train[1]).float()
    n = x_all.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(seed)
    best = {"epoch": 0, "val_auc": -1.0}
    best_state = copy.deepcopy(model.state_dict())
    bar = progress(range(1, epochs + 1), desc="train", unit="epoch")
    for epoch in bar:
        model.train()
        total = 0.0
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            x = augment(x_all[idx], max_shift, max_rotate, generator).to(device)
            x, y = mixup(x, y_all[idx].to(device), mixup_alpha, rng, generator)
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.shape[0]
        p_val = predict_proba(model, val[0], batch_size=4 * batch_size, device=device)
        stats = {
            "train_loss": total / n,
            "val_loss": _bce(p_val, val[1]),
            "val_auc": float(roc_auc_score(val[1], p_val)),
            "val_accuracy": float(np.mean((p_val >= 0.5) == val[1])),
            "lr": sched.get_last_lr()[0],
        }
        bar.set_postfix(loss=f"{stats['train_loss']:.3f}", val_auc=f"{stats['val_auc']:.4f}")
        on_epoch(epoch, stats)
        if stats["val_auc"] > best["val_auc"]:
            best = {"epoch": epoch, "val_auc": stats["val_auc"]}
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best["epoch"] >= patience:
            break
    model.load_state_dict(best_state)
    return model, {
        "best_epoch": best["epoch"],
        "best_val_auc": best["val_auc"],
        "epochs_run": epoch,
    }


def save_checkpoint(path: Path, model: nn.Module, cfg: ClassifierConfig, info: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"config": asdict(cfg), "info": info, "state_dict": model.state_dict()}, tmp)


def load_classifier(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the classifier from the config stored in its checkpoint."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        model = build(ClassifierConfig(**ckpt["config"])).to(device)
        model.load_state_dict(ckpt["state_dict"])
    except CHECKPOINT_ERRORS as err:
        raise DataError(
            f"{path}: not a usable classifier checkpoint ({type(err).__name__}: "
            f"{err}); rerun train (dvc repro -f train)"
        ) from None
    return model.eval()
