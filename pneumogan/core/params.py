"""params.yaml, declared once: one pydantic model per section, one field per knob.

Each field holds a knob's type, its allowed values or range (`Field(ge=, gt=, le=, lt=)`) and its
one-line meaning (`description`); docs/params.md is rendered from them (scripts/params_doc.py).
Every knob is required and unknown keys are errors: params.yaml sets everything, so a run is
described by that one file.

`train.arch` and `gan.variant` name entries of the registries (`pneumogan.core.registry`), read
when a value is validated; core cannot import the modules that fill them, so whoever validates
those knobs imports `pneumogan.classify.nets` and `pneumogan.generate.nets` first.

The `check_params` stage validates the whole file and writes each stage its slice (the params
it may read, as JSON). Stages depend on their slice, not on params.yaml, so a bad value fails
before DVC touches any expensive stage, and a change that leaves a slice's bytes alone leaves
that stage cached. `load_slice` validates a slice again, into a model whose fields are the
sections and knobs of `Params` themselves (`cfg.train` is a `TrainParams`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

from pneumogan.core.choices import DEVICES, DIFFAUGMENT, FITS, METHODS, SIZES, SOURCES
from pneumogan.core.errors import ParamsError
from pneumogan.core.registry import CLASSIFIERS, GENERATORS, Registry

__all__ = [
    "Params",
    "ParamsError",
    "StageParams",
    "load_params",
    "load_slice",
    "override",
    "stage_slice",
]

NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"  # study names: MLflow experiment and git ref safe
PIPELINE_FILE = "pipeline.json"  # beside the slices: every param, for MLflow only (no stage's dep)


# ---------------------------------------------------------------- what a knob may hold


@dataclass(frozen=True)
class OneOf:
    """A knob that names one of `allowed`: a fixed tuple, or the names a registry holds when the
    value is validated (those carrying `tag`, if given). The type must match too: 64.0 is not
    the image size 64, nor is `true` a 1."""

    allowed: tuple[Any, ...] | Registry
    tag: str | None = None

    def values(self) -> tuple[Any, ...]:
        if isinstance(self.allowed, Registry):
            return self.allowed.names(self.tag)
        return self.allowed

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def _check(self, value: Any) -> Any:
        allowed = self.values()
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ValueError(f"must be one of {list(allowed)}")
        return value


def choice(allowed: tuple[Any, ...]) -> Any:
    """The type of a knob that takes one of `allowed`."""
    return Annotated[Literal[allowed], OneOf(allowed)]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"not a regular expression ({err})") from None
    return value


def _distinct(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(value)) != len(value):
        raise ValueError("expected a list of distinct values")
    return value


Device = choice(DEVICES)
Regex = Annotated[str, AfterValidator(_regex)]  # a Python regular expression
Distinct = AfterValidator(_distinct)  # a list whose items differ
AUTO = "auto (CUDA, then MPS, then CPU), cpu, cuda or mps"


class Section(BaseModel):
    """A mapping of params.yaml: every key required, no other key, values never changed.

    Strict: a knob takes its own type only (`1` is not `true`, `"3"` not 3); an int is taken
    for a float. A list is taken for a tuple (YAML and JSON have no tuples).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ---------------------------------------------------------------- the sections


class DataParams(Section):
    source: choice(SOURCES) = Field(
        description="medmnist (a MedMNIST file) or folder (a tree of PNG, JPEG or DICOM)"
    )
    flag: str = Field(
        pattern=r"^[a-z0-9]+$",
        description="medmnist: which 2D binary dataset (pneumoniamnist, breastmnist)",
    )
    path: str = Field(
        pattern=r"^.+$",
        description="a DVC dependency of download. medmnist: a folder searched first for "
        "<flag>[_<size>].npz; folder: the tree's root (train/val/test/<class>)",
    )
    # Not `size`: DVC leaves every param of that name out of its run-cache key (DVC #10296).
    image_size: choice(SIZES) = Field(description="image side in px: 28, 64, 128 or 224")
    classes: tuple[StrictStr, StrictStr] = Field(
        strict=False, description="folder: the class folders of label 0 and label 1"
    )
    fit: choice(FITS) = Field(
        description="folder: make images square by cropping the centre, or pad (black)"
    )
    patient_pattern: Regex = Field(
        description="folder: a regular expression whose group 1 is the patient id in a file name"
    )
    max_unreadable: float = Field(
        ge=0.0,
        le=1.0,
        description="folder: fail when more than this share of the images cannot be read",
    )


class SplitParams(Section):
    train_per_class: int | None = Field(
        ge=1, description="cap on real training images per class, drawn with seed; null = all"
    )
    keep_ratio: bool = Field(
        description="true: the cap applies to the minority class and the majority keeps its "
        "original multiple of it, so the imbalance survives the cap"
    )
    min_images: int = Field(
        ge=0,
        description="a val or test split smaller than this (or missing) is carved out of train "
        "by patient",
    )
    carve_fraction: float = Field(
        gt=0.0,
        le=0.5,
        description="share of train's patients a carved split takes (stratified by class)",
    )


class EdaParams(Section):
    samples_per_class: int = Field(
        ge=1, le=256, description="training images per class in the sample grid"
    )
    bins: int = Field(ge=2, le=256, description="bins of the pixel-intensity histograms")


class Schedule(Section):
    """The optimisation knobs the reference network and the classifier share: AdamW steps on a
    one-cycle schedule."""

    epochs: int = Field(
        gt=0, description="epochs the one-cycle schedule spans (train: at most, see patience)"
    )
    batch_size: int = Field(gt=0, description="images per optimiser step")
    lr: float = Field(gt=0, description="peak AdamW learning rate of the one-cycle schedule")
    warmup_fraction: float = Field(
        gt=0.0, le=1.0, description="share of the schedule's steps spent rising to the peak rate"
    )


class Regularisation(Section):
    """What keeps the classifier from fitting its training images too closely. The reference
    network has none of these knobs: it trains plainly (see `pneumogan.classify.train`)."""

    weight_decay: float = Field(ge=0.0, description="AdamW weight decay")
    patience: int = Field(
        gt=0, description="stop after this many epochs without a better validation AUC"
    )
    max_shift: float = Field(
        ge=0.0,
        le=0.5,
        description="augmentation: random shift, up to this fraction of the image side",
    )
    max_rotate: float = Field(
        ge=0.0, le=180.0, description="augmentation: random rotation, up to this many degrees"
    )
    max_zoom: float = Field(
        ge=0.0,
        le=0.5,
        description="augmentation: random zoom by a factor in [1 - max_zoom, 1 + max_zoom]",
    )
    contrast: float = Field(
        ge=0.0,
        le=1.0,
        description="augmentation: random contrast factor in [1 - c, 1 + c] about the image's "
        "mean, and a brightness offset of ±c (pixels in [-1, 1])",
    )
    ema: float = Field(
        ge=0.0,
        le=0.9999,
        description="validate and keep an exponential moving average of the weights with this "
        "decay per step (0.99: about the last 100 steps); 0 is off",
    )


class ReferenceParams(Schedule):
    """The classifier trained on real images only; its features measure the GAN."""

    width: int = Field(
        gt=0, description="channels of the first stage of its resnet_small (then 2x, 4x)"
    )
    device: Device = Field(description=AUTO)


class GanParams(Section):
    variant: Annotated[str, OneOf(GENERATORS)] = Field(
        description="the generator, by its registered name: unconditional ones learn the "
        "minority class's images, class-conditional ones every image"
    )
    latent_dim: int = Field(
        gt=0,
        description="length of the generator's noise vector z (diffusion: the noise is an image)",
    )
    width: int = Field(
        gt=0, description="channels of the generator's last hidden layer; doubles per level up"
    )
    epochs: int = Field(
        gt=0,
        description="passes over the images it learns from (the minority class's, or all)",
    )
    batch_size: int = Field(gt=0, description="images per GAN step")
    lr: float = Field(gt=0, description="Adam learning rate of both networks (DCGAN paper)")
    beta1: float = Field(
        ge=0.0,
        le=1.0,
        description="Adam β1 of both networks (DCGAN paper; diffusion: AdamW defaults)",
    )
    sample_every: int = Field(
        gt=0,
        description="epochs between fixed-noise sample grids (the last epoch always gets one)",
    )
    eval_every: int = Field(
        gt=0,
        description="epochs between held-out FID checks; the best checkpoint is kept",
    )
    diffaugment: Annotated[tuple[choice(DIFFAUGMENT), ...], Distinct] = Field(
        strict=False,
        description="DiffAugment (Zhao et al., 2020) on every image D sees, real and "
        "generated: any of color, translation, cutout; [] is off",
    )
    sampling_steps: int = Field(
        gt=0, description="ddpm, cddpm: DDIM steps per drawn image (more: finer, slower)"
    )
    ema: float = Field(
        ge=0.0,
        lt=1.0,
        description="sample, score and keep an exponential moving average of the generator's "
        "weights with this decay per step (0.999: about the last 1000 steps); 0 is off",
    )
    guidance: float = Field(
        ge=0.0,
        description="cddpm: classifier-free guidance scale; 0 draws unconditionally, 1 from the "
        "class-conditional model alone, above 1 pushes harder towards the class",
    )
    device: Device = Field(description=AUTO)

    @model_validator(mode="after")
    def _augment_only_a_discriminator(self) -> GanParams:
        if self.diffaugment and "adversarial" not in GENERATORS.get(self.variant).tags:
            raise ValueError(
                "gan.diffaugment augments what a GAN's discriminator sees; gan.variant "
                f"{self.variant} has no discriminator: set gan.diffaugment: []"
            )
        return self


class SynthesizeParams(Section):
    batch_size: int = Field(gt=0, description="images drawn from the generator per forward pass")
    nearest_k: int = Field(
        gt=0,
        description="k of the k-NN balls behind precision, recall, density and coverage",
    )
    kid_subsets: int = Field(
        gt=0, description="random subsets averaged by the kernel distance (KID)"
    )
    copy_percentile: float = Field(
        gt=0.0,
        le=100.0,
        description="a synthetic image nearer to a training image than this percentile of "
        "held-out real images' nearest distances counts as a likely copy",
    )


class FuseParams(Section):
    method: choice(METHODS) = Field(
        description="minority images added to the real ones: gan, oversample, none, or "
        "weighted (none added; the minority class's loss weighted up instead)"
    )
    target_ratio: float = Field(
        gt=0.0, le=1.0, description="minority / majority count after fusing"
    )


class TrainParams(Regularisation, Schedule):
    """The classifier: its network, how it trains (`Schedule`, `Regularisation`), how it
    predicts."""

    arch: Annotated[str, OneOf(CLASSIFIERS)] = Field(
        description="the network, by its registered name; the ImageNet backbones need >= 32 px"
    )
    pretrained: bool = Field(
        description="backbones: start from torchvision's ImageNet weights (torch.hub cache)"
    )
    freeze: bool = Field(description="with pretrained: train only the new head")
    input_size: int | None = Field(
        ge=16,
        le=512,
        description="upsample images to this side inside the network; null keeps theirs",
    )
    width: int = Field(gt=0, description="resnet_small: channels of the first stage (then 2x, 4x)")
    ensemble: int = Field(
        ge=1,
        le=16,
        description="networks trained one after another from the seed's streams, each with its "
        "own early stop; the model averages their P(pneumonia)",
    )
    tta_shift: float = Field(
        ge=0.0,
        le=8.0,
        description="test-time augmentation: P(pneumonia) is the mean over the image and its 4 "
        "shifts by this many px; 0 is off",
    )
    gate_pass_rate: float = Field(
        gt=0.5,
        le=1.0,
        description="the input gate's threshold: the share of real validation X-rays whose "
        "out-of-distribution score (Mahalanobis distance of the classifier's features to the "
        "training X-rays') it lets pass; an image scoring higher is flagged, not called",
    )
    device: Device = Field(description=AUTO)

    @model_validator(mode="after")
    def _pretrained_only_on_backbones(self) -> TrainParams:
        backbones = CLASSIFIERS.names("backbone")
        if self.pretrained and self.arch not in backbones:
            raise ValueError(
                f"train.pretrained = true: {self.arch} has no ImageNet weights; "
                f"train.arch must be one of {list(backbones)}"
            )
        if self.freeze and not self.pretrained:
            raise ValueError(
                "train.freeze = true trains only the head, on a backbone that must have been "
                "trained already: set train.pretrained: true too"
            )
        return self


class EvaluateParams(Section):
    register_as: str | None = Field(
        pattern=f"^{NAME}$",
        description="MLflow registered-model name of the evaluated classifier: a new version "
        "per evaluate run that passes register_min_val_auc, never for a study's runs; null logs "
        "the model in the run without registering it",
    )
    register_min_val_auc: float = Field(
        ge=0.0,
        le=1.0,
        description="validation AUC below which the evaluated classifier is not registered (it "
        "is still logged in its run); the test split chooses nothing",
    )
    champion_alias: str | None = Field(
        pattern=f"^{NAME}$",
        description="alias of the registered model moved to a new version only when its "
        "validation AUC (version tag val_auc) beats the holder's; serve "
        "models:/<register_as>@<alias>; null moves no alias",
    )
    batch_size: int = Field(gt=0, description="test images per forward pass")
    threshold: float = Field(
        gt=0.0, le=1.0, description="P(pneumonia) at or above which an image is called pneumonia"
    )
    bootstrap_resamples: int = Field(
        ge=100, description="resamples of the test set behind the confidence intervals"
    )
    ci_level: float = Field(
        ge=0.5, le=0.999, description="confidence level of the bootstrap intervals"
    )
    calibration_bins: int = Field(
        ge=2, le=100, description="equal-width bins of the reliability diagram and of ECE"
    )
    error_grid: int = Field(
        gt=0, description="at most this many misclassified test images in the error grid"
    )


class ExplainParams(Section):
    per_group: int = Field(
        ge=1,
        le=32,
        description="Grad-CAM overlays per group of test images (true class x right/wrong)",
    )


class ExportParams(Section):
    opset: int = Field(
        ge=18, le=23, description="ONNX opset of the graph (torch's exporter writes 18 and up)"
    )
    max_abs_diff: float = Field(
        gt=0.0,
        le=1.0,
        description="fail when onnxruntime and torch differ by more in any test P(pneumonia) "
        "(the input gate's decisions must agree on every test image)",
    )


class Params(Section):
    """The whole of params.yaml."""

    seed: int = Field(
        ge=0,
        description="seeds every random choice: split caps, GAN, synthesis, oversampling, training",
    )
    mixup: float = Field(
        ge=0.0,
        description="α of mixup's λ ~ Beta(α, α) in classifier training; 0 turns mixup off",
    )
    study: str | None = Field(
        pattern=f"^{NAME}$",
        description="MLflow grouping only: runs go to experiment pneumogan-study-<study>; no "
        "stage reads it, so setting it never reruns a stage",
    )
    data: DataParams = Field(description="where the images come from")
    split: SplitParams = Field(description="train, val and test splits")
    eda: EdaParams = Field(description="a look at the data before anything trains on it")
    reference: ReferenceParams = Field(
        description="a classifier trained on real images only; its features measure the GAN"
    )
    gan: GanParams = Field(description="the generator of minority-class images")
    synthesize: SynthesizeParams = Field(description="drawing the synthetic images")
    fuse: FuseParams = Field(description="balancing the training set")
    train: TrainParams = Field(description="the classifier")
    evaluate: EvaluateParams = Field(description="the classifier on the test split")
    explain: ExplainParams = Field(description="Grad-CAM of test images")
    export: ExportParams = Field(description="the classifier as ONNX, checked by onnxruntime")


# ---------------------------------------------------------------- reading params


def validate(raw: Any, where: str | Path) -> Params:
    """`raw` (params.yaml as read) as `Params`; an error names `where`, key, value and fix."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"{where}: {explain(err, Params, 'params')}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; errors name the file, key, value and allowed range."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found (run from the repo root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return validate(raw, path)


def override(params: Params, changes: Mapping[str, Any], where: str = "overrides") -> Params:
    """`params` with some knobs changed (`{"train.ema": 0.99}`), validated as params.yaml is."""
    raw = params.model_dump()
    for key, value in changes.items():
        *heads, last = key.split(".")
        node = raw
        for head in heads:
            node = node.get(head) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ParamsError(f"{where}: {key}: no such section in params")
        node[last] = value
    return validate(raw, where)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a params model (or dict) to {'gan.lr': 0.0002, ...} for logging."""
    d = obj.model_dump() if isinstance(obj, BaseModel) else obj
    out: dict[str, Any] = {}
    for name, value in d.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


# ---------------------------------------------------------------- errors in one line


TYPE_NAMES = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str"}


def value_range(info: FieldInfo) -> str | None:
    """The allowed range of a numeric knob, as `[0.0, 1.0]` or `(0, inf]`; None if unbounded."""
    bound = {
        name: getattr(m, name)
        for m in info.metadata
        for name in ("ge", "gt", "le", "lt")
        if getattr(m, name, None) is not None
    }
    lo, hi = bound.get("gt", bound.get("ge")), bound.get("lt", bound.get("le"))
    if lo is None and hi is None:
        return None
    left, right = "(" if "gt" in bound else "[", ")" if "lt" in bound else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[FieldInfo | None, Any]:
    """The field at `loc` (None at the top) and the model it holds (None for a plain value)."""
    info, current = None, model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            return info, None
        info = fields[part]
        current = info.annotation
    is_model = isinstance(current, type) and issubclass(current, BaseModel)
    return info, current if is_model else None


def _where(prefix: str, loc: tuple[Any, ...]) -> str:
    """The dotted key of `loc` under `prefix`: `params.train.lr`, `data.classes[1]`."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


def _keys(err: ValidationError, kind: str, parent: tuple[Any, ...]) -> list[str]:
    """The keys of the mapping at `parent` with errors of `kind` (unknown, missing)."""
    locs = [tuple(e["loc"]) for e in err.errors() if e["type"] == kind]
    return sorted(loc[-1] for loc in locs if loc[:-1] == parent and isinstance(loc[-1], str))


def _shown(value: Any, info: FieldInfo | None) -> str:
    """`value` as the error shows it: an int given for a float knob as that float."""
    types = (info.annotation, *getattr(info.annotation, "__args__", ())) if info else ()
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return repr(value)


def explain(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """The first problem in `err` in one line: key, value, what is allowed and the fix.

    Keys are dotted from `prefix` (`params.train.lr`); unknown and missing keys of one mapping
    are listed together. A slice (`prefix` empty) missing a top-level key says to rerun DVC.
    """
    first = err.errors(include_url=False)[0]
    kind, loc, value = first["type"], tuple(first["loc"]), first["input"]
    if kind in ("extra_forbidden", "missing") and (not loc or isinstance(loc[-1], str)):
        parent = loc[:-1]
        here = _where(prefix, parent)
        unknown, missing = _keys(err, "extra_forbidden", parent), _keys(err, "missing", parent)
        if not prefix and not parent and missing:
            return f"{missing[0]}: missing from the slice; rerun dvc repro"
        if not unknown:
            return f"{here}: missing key(s) {missing}; every knob must be set"
        _, section = _walk(model, parent)
        allowed = sorted(section.model_fields) if section else []
        also = f", missing key(s) {missing}" if missing else ""
        return f"{here}: unknown key(s) {unknown}{also}; allowed: {allowed}"
    if kind in ("missing", "too_long", "too_short", "tuple_type"):  # not a list of the size
        loc = loc[:-1] if kind == "missing" else loc  # the item missing from a too short list
        info, _ = _walk(model, loc)
        items = getattr(info.annotation, "__args__", ()) if info else ()
        what = f"a list of {len(items)} values" if items and ... not in items else "a list"
        return f"{_where(prefix, loc)} = {value!r}: expected {what}"
    info, section = _walk(model, loc)
    where = _where(prefix, loc)
    if kind in ("model_type", "dict_type"):
        return f"{where}: expected a mapping, got {type(value).__name__}"
    if section is not None and kind == "value_error":  # a check across a section's knobs
        return str(first["ctx"]["error"])
    shown = f"{where} = {_shown(value, info)}"
    if kind in TYPE_NAMES:
        return f"{shown}: expected {TYPE_NAMES[kind]}, got {type(value).__name__}"
    if kind.startswith(("greater_than", "less_than")):
        return f"{shown}: out of range, allowed {value_range(info)}"
    if kind == "string_pattern_mismatch":
        return f"{shown}: must match {first['ctx']['pattern']}"
    if kind == "value_error":
        return f"{shown}: {first['ctx']['error']}"
    return f"{shown}: {first['msg']}"


# ---------------------------------------------------------------- per-stage slices

# What each stage reads: top-level params and sections, or "section.key" for one knob.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "download": ("data",),
    "split": ("seed", "split", "data.image_size"),
    "eda": ("seed", "eda", "data.image_size"),
    "reference": ("seed", "reference"),
    "train_gan": ("seed", "gan"),
    "synthesize": ("seed", "synthesize", "fuse.target_ratio"),
    "fuse": ("seed", "fuse"),
    "train": ("seed", "mixup", "train"),
    "evaluate": ("seed", "evaluate"),
    "explain": ("explain", "evaluate.threshold"),
    "export": ("export", "evaluate.batch_size", "evaluate.threshold"),
}
# What a stage logs beside its own params and never reads: the params that made its inputs
# (the evaluated model's), so its MLflow run says what produced the model it logs.
PROVENANCE: dict[str, tuple[str, ...]] = {"evaluate": ("mixup", "fuse", "train", "gan")}
# Stages whose work only `fuse.method: gan` uses; for other methods their slice says so and
# nothing else, so they run once (in seconds, writing placeholders) and then stay cached.
GAN_STAGES = ("reference", "train_gan", "synthesize")


def stage_slice(params: Params, stage: str) -> dict[str, Any]:
    """The params `stage` may read, as plain JSON-able data, with `enabled`."""
    if stage in GAN_STAGES and params.fuse.method != "gan":
        return {"enabled": False}
    data = params.model_dump()
    out: dict[str, Any] = {"enabled": True}
    for key in STAGE_PARAMS[stage]:
        head, _, sub = key.partition(".")
        if sub:
            out.setdefault(head, {})[sub] = data[head][sub]
        else:
            out[head] = data[head]
    made_by = [k for k in PROVENANCE.get(stage, ()) if k != "gan" or params.fuse.method == "gan"]
    if made_by:
        out["provenance"] = {k: data[k] for k in made_by}
    return json.loads(json.dumps(out))  # as written and read back: tuples become lists


class StageParams(BaseModel):
    """One stage's slice: its knobs and sections, typed as in `Params` and checked again.

    Reading a param outside the slice is an error that says where to add it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    stage: ClassVar[str] = ""
    enabled: bool
    _source: Path | None = PrivateAttr(default=None)  # the slice file, when read from one

    def flat(self) -> dict[str, Any]:
        """The slice's params as {'train.lr': 0.003, ...} (without `enabled`), for MLflow.

        The provenance params are logged under their own names (`mixup`, `train.lr`).
        """
        raw = self.raw
        own = {k: v for k, v in raw.items() if k not in ("enabled", "provenance")}
        return {**flatten(raw.get("provenance", {})), **flatten(own)}

    @property
    def raw(self) -> dict[str, Any]:
        """The slice as JSON data, as check_params wrote it."""
        return self.model_dump(mode="json")

    def pipeline(self) -> dict[str, Any]:
        """Every param of the run (check_params' PIPELINE_FILE beside the slice), for MLflow's
        parent run and study only; {} for a slice without one (written by hand)."""
        if self._source is None:
            return {}
        try:
            every = json.loads((self._source.parent / PIPELINE_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return every if isinstance(every, dict) else {}

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # pydantic's: the private attributes
        except AttributeError:
            if name.startswith("_"):
                raise
        raise AttributeError(
            f"stage {self.stage} reads params.{name}, which its slice lacks "
            "(add it to STAGE_PARAMS in pneumogan/core/params.py)"
        )


def _knob(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """A field of `Params` for another model: its type, checks and description, as declared."""
    kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return kind, Field(description=info.description)


@functools.cache
def slice_model(stage: str, enabled: bool = True) -> type[StageParams]:
    """The model of `stage`'s slice, made from STAGE_PARAMS and the fields of `Params`."""
    name = "".join(w.title() for w in stage.split("_"))
    fields: dict[str, Any] = {"enabled": (Literal[enabled], ...)}
    if enabled:
        parts: dict[str, dict[str, Any]] = {}
        for key in STAGE_PARAMS[stage]:
            head, _, sub = key.partition(".")
            if sub:
                section = Params.model_fields[head].annotation
                parts.setdefault(head, {})[sub] = _knob(section.model_fields[sub])
            else:
                fields[head] = _knob(Params.model_fields[head])
        for head, knobs in parts.items():
            part = create_model(f"{name}{head.title()}Part", __base__=Section, **knobs)
            fields[head] = (part, ...)
        if stage in PROVENANCE:  # logged only, never read: kept as check_params wrote it
            fields["provenance"] = (dict[str, Any], ...)
    model = create_model(
        f"{name}Slice" if enabled else f"{name}Off", __base__=StageParams, **fields
    )
    model.stage = stage
    return model


def load_slice(path: str | Path, stage: str) -> StageParams:
    """Read a slice written by `check_params`, validating every value again as `Params` does."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ParamsError(
            f"{path}: params slice not found; run the check_params stage first (dvc repro)"
        ) from None
    except (OSError, json.JSONDecodeError) as err:
        raise ParamsError(f"{path}: not a params slice ({err}); rerun dvc repro") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("enabled"), bool):
        raise ParamsError(f"{path}: not a params slice (no 'enabled'); rerun dvc repro")
    model = slice_model(stage, raw["enabled"])
    try:
        cfg = model.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"{path}: {explain(err, model)}") from None
    cfg._source = path
    return cfg
