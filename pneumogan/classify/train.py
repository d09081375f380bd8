"""The classifier's training loop: AdamW, one-cycle schedule, augmentation, mixup, weight
averaging (EMA), early stop."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pneumogan.classify.augment import augment, mixup
from pneumogan.classify.checkpoint import Classifier
from pneumogan.classify.gate import features, fit_gate
from pneumogan.classify.nets import ClassifierConfig, Ensemble, ShiftTTA, build
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.params import Regularisation, Schedule, TrainParams
from pneumogan.core.progress import progress
from pneumogan.core.transforms import ImageTransform


def network(train: TrainParams, size: int) -> ClassifierConfig:
    """The network the `train` section describes, for images of side `size`."""
    return ClassifierConfig.for_arch(
        train.arch,
        size,
        train.width,
        train.input_size,
        train.pretrained,
        train.freeze,
        train.ensemble,
        train.tta_shift,
    )


def plain(schedule: Schedule) -> Regularisation:
    """No regularisation: no weight decay, augmentation, weight averaging or early stop."""
    return Regularisation(
        weight_decay=0.0,
        patience=schedule.epochs,
        max_shift=0.0,
        max_rotate=0.0,
        max_zoom=0.0,
        contrast=0.0,
        ema=0.0,
    )


def _bce(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_classifier(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    net: ClassifierConfig,
    schedule: Schedule,
    *,
    mixup: float = 0.0,
    rng: np.random.Generator,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
    weights: np.ndarray | None = None,
) -> tuple[Classifier, dict]:
    """Train `net` on `train`; return the weights of the epoch with the best validation AUC.

    `schedule` is the `train` section (`TrainParams`: its schedule and regularisation), or
    another `Schedule`, the `reference` section, trained plainly (`plain`); `mixup` is the α of
    Beta(α, α), 0 for none.

    All randomness (batch order, augmentation, mixup) comes from `rng`; weights are
    initialised from torch's global generator (seeded by the stage). An ensemble
    (`net.members` > 1) trains its members one after the other, each with its own early stop,
    drawing on from the same streams (so its first member is the network `members: 1` trains);
    `on_epoch` then sees the epochs numbered on across members, with the member in the stats.
    `weights` (one per training image) weight each image's loss; mixup mixes them as it mixes
    the labels. With `net.tta_shift` the trained network (or ensemble) is then wrapped in
    test-time augmentation (`ShiftTTA`); checkpoints are still chosen without it, and the
    summary adds the wrapped model's validation AUC (`tta_val_auc`).
    """
    reg = schedule if isinstance(schedule, Regularisation) else plain(schedule)
    fit = partial(
        _train_one,
        schedule=schedule,
        reg=reg,
        alpha=mixup,
        rng=rng,
        device=device,
        weights=weights,
    )
    body = net.body()  # what trains: test-time augmentation wraps it afterwards
    if body.members == 1:
        model, summary = fit(train, val, body, on_epoch=on_epoch)
        summary = dict(summary)
    else:
        members, summary, offset = [], {}, 0
        for k in range(1, body.members + 1):

            def seen(epoch: int, stats: dict[str, float], k: int = k, offset: int = offset) -> None:
                on_epoch(offset + epoch, {**stats, "member": k})

            member, summary[f"member{k}"] = fit(train, val, body.member(), on_epoch=seen)
            members.append(member)
            offset += summary[f"member{k}"]["epochs_run"]
        model = Ensemble(members).eval()
        p_val = _val_proba(model, body, val, schedule.batch_size)
        summary = {
            "best_val_auc": float(roc_auc_score(val[1], p_val)),
            "epochs_run": offset,
            **summary,
        }
    if net.tta_shift:
        model = ShiftTTA(model, net.tta_shift).eval()
        summary["tta_val_auc"] = float(
            roc_auc_score(val[1], _val_proba(model, net, val, schedule.batch_size))
        )
    clf = Classifier(model, net, ImageTransform(size=net.size), dict(summary))
    return clf, summary


def with_gate(
    clf: Classifier,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    pass_rate: float,
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> Classifier:
    """`clf` with an input gate fitted on the features of `train` (real images only: the gate
    measures likeness to real X-rays), its threshold passing `pass_rate` of `val`."""
    model, encode = clf.model.to(device), clf.transform.encode
    try:
        f_train = features(model, encode(train[0]), batch_size=batch_size, device=device)
        f_val = features(model, encode(val[0]), batch_size=batch_size, device=device)
    finally:
        clf.model.cpu()
    gate = fit_gate(f_train, train[1], f_val, pass_rate).eval()
    return Classifier(clf.model.eval(), clf.config, clf.transform, clf.info, gate)


def _val_proba(
    model: torch.nn.Module, net: ClassifierConfig, val: tuple[np.ndarray, np.ndarray], batch: int
) -> np.ndarray:
    clf = Classifier(model, net, ImageTransform(size=net.size), {})
    return predict_proba(clf, val[0], batch_size=batch)


def _train_one(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    net: ClassifierConfig,
    *,
    schedule: Schedule,
    reg: Regularisation,
    alpha: float,
    rng: np.random.Generator,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None],
    weights: np.ndarray | None,
) -> tuple[torch.nn.Module, dict[str, float]]:
    """One network: its best-validation-AUC weights (on the CPU, in eval mode) and summary."""
    transform = ImageTransform(size=net.size)
    # channels-last convolutions run about a quarter faster on CPU (and on recent GPUs)
    model = build(net, fetch_weights=True).to(device, memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
    x_all, y_all = transform.encode(train[0]), torch.from_numpy(train[1]).float()
    w_all = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    n = x_all.shape[0]
    steps = schedule.epochs * math.ceil(n / schedule.batch_size)
    trainable = [p for p in model.parameters() if p.requires_grad]  # the head only when frozen
    opt = torch.optim.AdamW(trainable, lr=schedule.lr, weight_decay=reg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=schedule.lr, total_steps=steps, pct_start=schedule.warmup_fraction
    )
    # With `ema`, validation and the checkpoint use the moving average of the weights (batch-norm
    # statistics averaged too), which follows the trained weights with a lag of ~1/(1 − ema) steps.
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(reg.ema), use_buffers=True)
        if reg.ema
        else None
    )
    kept = ema.module if ema is not None else model
    clf = Classifier(kept, net, transform, {})
    best = {"epoch": 0, "val_auc": -1.0}
    best_state = copy.deepcopy(kept.state_dict())
    bar = progress(range(1, schedule.epochs + 1), desc="train", unit="epoch")
    for epoch in bar:
        model.train()
        total = 0.0
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, schedule.batch_size):
            idx = perm[i : i + schedule.batch_size]
            x = augment(
                x_all[idx],
                reg.max_shift,
                reg.max_rotate,
                generator,
                max_zoom=reg.max_zoom,
                contrast=reg.contrast,
            )
            x = x.to(device, memory_format=torch.channels_last)
            if w_all is None:
                x, y = mixup(x, y_all[idx].to(device), alpha, rng, generator)
                loss = F.binary_cross_entropy_with_logits(model(x), y)
            else:  # labels and weights mixed by the same λ and pairs
                x, yw = mixup(
                    x, torch.stack([y_all[idx], w_all[idx]], 1).to(device), alpha, rng, generator
                )
                loss = F.binary_cross_entropy_with_logits(model(x), yw[:, 0], weight=yw[:, 1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item() * idx.shape[0]
        p_val = predict_proba(clf, val[0], batch_size=schedule.batch_size, device=device)
        stats = {
            "train_loss": total / n,
            "val_loss": _bce(p_val, val[1]),
            "val_auc": float(roc_auc_score(val[1], p_val)),
            "lr": sched.get_last_lr()[0],
        }
        bar.set_postfix(loss=f"{stats['train_loss']:.3f}", val_auc=f"{stats['val_auc']:.4f}")
        on_epoch(epoch, stats)
        if stats["val_auc"] > best["val_auc"]:
            best = {"epoch": epoch, "val_auc": stats["val_auc"]}
            best_state = copy.deepcopy(kept.state_dict())
        elif epoch - best["epoch"] >= reg.patience:
            break
    kept.load_state_dict(best_state)
    summary = {"best_epoch": best["epoch"], "best_val_auc": best["val_auc"], "epochs_run": epoch}
    return kept.cpu().eval(), summary
