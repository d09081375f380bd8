"""Synthesis quality, measured in the feature space of a classifier trained on real images only.

No pretrained weights are needed: the feature network is the project's own reference
classifier (stage `reference`). Distances come from torchmetrics (FID, KID) and prdc
(precision, recall, density, coverage); every figure is reported next to the same figure for
held-out real images (the floor) and for the other class (the scale).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch
from prdc import compute_prdc
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from pneumogan.classify.checkpoint import Classifier
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.choices import LABELS
from pneumogan.core.errors import DataError
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.config import generate


class _Precomputed(nn.Module):
    """Identity 'feature extractor', so torchmetrics works on features computed once."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@torch.no_grad()
def embed(reference: Classifier, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """Reference-network features (float64, N×D) of uint8 images."""
    model = reference.model.eval()
    x = reference.transform.encode(images)
    chunks = [model.features(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(chunks).double()


class HeldoutFID:
    """Scores a generator: FID between its images from fixed noise and held-out real images
    (of class `label`, which a conditional generator is asked to draw).

    The noise is its own stream (`gan_selection_noise`), so the images that pick the
    checkpoint are never the ones synthesis adds to the training set.
    """

    def __init__(
        self,
        reference: Classifier,
        heldout: np.ndarray,
        z: torch.Tensor,
        transform: ImageTransform,
        device: torch.device | str = "cpu",
        label: int | None = None,
    ) -> None:
        self.reference, self.z, self.transform, self.device = reference, z, transform, device
        self.heldout = embed(reference, heldout)
        self.label = label

    def __call__(self, G: nn.Module) -> float:
        out = generate(G, self.z.to(self.device), self.label)
        return fid(self.heldout, embed(self.reference, self.transform.decode(out)))


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between two feature sets (torchmetrics)."""
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int, seed: int) -> tuple[float, float]:
    """Kernel distance (mean, std over random subsets) between two feature sets (torchmetrics)."""
    size = min(real.shape[0], fake.shape[0])
    with warnings.catch_warnings():  # it warns that it keeps every feature: they are few
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
        metric = KernelInceptionDistance(
            feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng():  # KID draws its subsets from torch's global generator
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def distances(
    real: torch.Tensor, fake: torch.Tensor, *, nearest_k: int, kid_subsets: int, seed: int
) -> dict[str, float]:
    """FID, KID and precision / recall / density / coverage of `fake` against `real`.

    prdc's k-NN balls need k + 2 images per set: with fewer (a tiny capped training set) k
    shrinks to fit, and the k used is reported.
    """
    k = min(nearest_k, len(real) - 2, len(fake) - 2)
    if k < 1:
        raise DataError(
            f"need at least 3 real and 3 synthetic images, got {len(real)} and {len(fake)}"
        )
    kid_mean, kid_std = kid(real, fake, kid_subsets, seed)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        prdc = compute_prdc(real.numpy(), fake.numpy(), nearest_k=k)
    out = {"fid": fid(real, fake), "kid": kid_mean, "kid_std": kid_std, "nearest_k": k}
    out.update({name: float(v) for name, v in prdc.items()})
    return out


def nearest_l2(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Pixel-space L2 distance from each query image to its nearest image in `pool`."""
    q = torch.from_numpy(queries.reshape(len(queries), -1)).float()
    p = torch.from_numpy(pool.reshape(len(pool), -1)).float()
    return torch.cat(
        [torch.cdist(q[i : i + 1024], p).min(1).values for i in range(0, len(q), 1024)]
    ).numpy()


def quality_report(
    reference: Classifier,
    *,
    synthetic: np.ndarray,
    train_minority: np.ndarray,
    heldout_minority: np.ndarray,
    heldout_majority: np.ndarray,
    label: int,
    nearest_k: int,
    kid_subsets: int,
    copy_percentile: float,
    rng: np.random.Generator,
) -> dict:
    """Every synthesis-quality figure for metrics/gan.json, with its real-data references.

    Distances compare a probe set with the real training minority images. The three probe
    sets have the same size m (the held-out minority count), because FID depends on it:
    m synthetic images, the held-out minority images (floor), m held-out majority images
    (scale).
    """
    m = min(len(heldout_minority), len(synthetic), len(heldout_majority))
    probes = {
        "synthetic": synthetic[rng.choice(len(synthetic), m, replace=False)],
        "real_heldout": heldout_minority[rng.choice(len(heldout_minority), m, replace=False)],
        "other_class": heldout_majority[rng.choice(len(heldout_majority), m, replace=False)],
    }
    train_feats = embed(reference, train_minority)
    kid_seed = int(rng.integers(2**31))
    report: dict = {
        name: distances(
            train_feats,
            embed(reference, images),
            nearest_k=nearest_k,
            kid_subsets=kid_subsets,
            seed=kid_seed,
        )
        for name, images in probes.items()
    }

    def agreement(images: np.ndarray) -> float:
        p = predict_proba(reference, images, batch_size=512)
        return float(np.mean((p >= 0.5) == bool(label)))

    report["class_agreement"] = {
        "synthetic": agreement(synthetic),
        "real_heldout": agreement(heldout_minority),
    }
    # A synthetic image nearer to a training image than all but `copy_percentile`% of held-out
    # real images are counts as a likely copy; held-out real images give the expected share.
    real_nn = nearest_l2(heldout_minority, train_minority)
    threshold = float(np.percentile(real_nn, copy_percentile))
    synth_nn = nearest_l2(synthetic, train_minority)
    report["memorisation"] = {
        "threshold_l2": threshold,
        "share_synthetic": float(np.mean(synth_nn < threshold)),
        "share_real_heldout": float(np.mean(real_nn < threshold)),
        "median_nn_l2_synthetic": float(np.median(synth_nn)),
        "median_nn_l2_real_heldout": float(np.median(real_nn)),
    }
    report["n"] = {"probe": m, "train_minority": len(train_minority), "synthetic": len(synthetic)}
    return report


def per_class_report(
    reference: Classifier,
    drawn: dict[int, np.ndarray],
    *,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    heldout_images: np.ndarray,
    heldout_labels: np.ndarray,
    nearest_k: int,
    kid_subsets: int,
    copy_percentile: float,
    rng: np.random.Generator,
) -> dict:
    """A conditional generator's quality, class by class: for the images `drawn[c]` it drew of
    class c, `quality_report` against class c (training images, held-out floor, the other
    class as scale, agreement with the asked class, copies of class c's training images),
    plus the distances of the drawn images to class c's held-out images themselves."""
    out = {}
    for c, synthetic in sorted(drawn.items()):
        heldout = heldout_images[heldout_labels == c]
        report = quality_report(
            reference,
            synthetic=synthetic,
            train_minority=train_images[train_labels == c],
            heldout_minority=heldout,
            heldout_majority=heldout_images[heldout_labels != c],
            label=c,
            nearest_k=nearest_k,
            kid_subsets=kid_subsets,
            copy_percentile=copy_percentile,
            rng=rng,
        )
        report["synthetic_vs_heldout"] = distances(
            embed(reference, heldout),
            embed(reference, synthetic),
            nearest_k=nearest_k,
            kid_subsets=kid_subsets,
            seed=int(rng.integers(2**31)),
        )
        out[LABELS[c]] = report
    return out
