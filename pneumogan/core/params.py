"""Typed, validated view of params.yaml: every knob is required, unknown keys are errors.

The `check_params` stage validates the whole file and writes each stage its slice (the params
it may read, as JSON). Stages depend on their slice, not on params.yaml, so a bad value fails
before DVC touches any expensive stage, and a change that leaves a slice's bytes alone leaves
that stage cached.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pneumogan.core.choices import (
    ARCHS,
    BACKBONES,
    DEVICES,
    DIFFAUGMENT,
    FITS,
    GAN_VARIANTS,
    METHODS,
    SIZES,
    SOURCES,
)
from pneumogan.core.errors import ParamsError

__all__ = ["Params", "ParamsError", "load_params", "load_slice", "stage_slice"]

NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"  # study names: MLflow experiment and git ref safe
Device = Literal[DEVICES]


def _rng(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict:
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


def _pos() -> Any:
    return field(metadata=_rng(0, lo_open=True))


@dataclass(frozen=True)
class DataParams:
    source: Literal[SOURCES]
    flag: str = field(metadata={"pattern": r"[a-z0-9]+"})
    path: str = field(metadata={"pattern": r".+"})
    # Not `size`: DVC leaves every param of that name out of its run-cache key (DVC #10296).
    image_size: Literal[SIZES]
    classes: tuple[str, str]
    fit: Literal[FITS]
    patient_pattern: str = field(metadata={"regex": True})
    max_unreadable: float = field(metadata=_rng(0.0, 1.0))


@dataclass(frozen=True)
class SplitParams:
    train_per_class: int | None = field(metadata=_rng(1))
    keep_ratio: bool
    min_images: int = field(metadata=_rng(0))
    carve_fraction: float = field(metadata=_rng(0.0, 0.5, lo_open=True))


@dataclass(frozen=True)
class EdaParams:
    samples_per_class: int = field(metadata=_rng(1, 256))
    bins: int = field(metadata=_rng(2, 256))


@dataclass(frozen=True)
class ReferenceParams:
    width: int = _pos()
    epochs: int = _pos()
    batch_size: int = _pos()
    lr: float = _pos()
    warmup_fraction: float = field(metadata=_rng(0.0, 1.0, lo_open=True))
    device: Device


@dataclass(frozen=True)
class GanParams:
    variant: Literal[GAN_VARIANTS]
    latent_dim: int = _pos()
    width: int = _pos()
    epochs: int = _pos()
    batch_size: int = _pos()
    lr: float = _pos()
    beta1: float = field(metadata=_rng(0.0, 1.0))
    sample_every: int = _pos()
    eval_every: int = _pos()
    diffaugment: tuple[Literal[DIFFAUGMENT], ...]
    sampling_steps: int = _pos()
    device: Device

    def __post_init__(self) -> None:
        if self.variant == "ddpm" and self.diffaugment:
            raise ParamsError(
                "gan.diffaugment augments what a GAN's discriminator sees; gan.variant ddpm "
                "has no discriminator: set gan.diffaugment: []"
            )


@dataclass(frozen=True)
class SynthesizeParams:
    batch_size: int = _pos()
    nearest_k: int = _pos()
    kid_subsets: int = _pos()
    copy_percentile: float = field(metadata=_rng(0.0, 100.0, lo_open=True))


@dataclass(frozen=True)
class FuseParams:
    method: Literal[METHODS]
    target_ratio: float = field(metadata=_rng(0.0, 1.0, lo_open=True))


@dataclass(frozen=True)
class TrainParams:
    arch: Literal[ARCHS]
    pretrained: bool
    freeze: bool
    input_size: int | None = field(metadata=_rng(16, 512))
    width: int = _pos()
    epochs: int = _pos()
    batch_size: int = _pos()
    lr: float = _pos()
    warmup_fraction: float = field(metadata=_rng(0.0, 1.0, lo_open=True))
    weight_decay: float = field(metadata=_rng(0.0))
    patience: int = _pos()
    max_shift: float = field(metadata=_rng(0.0, 0.5))
    max_rotate: float = field(metadata=_rng(0.0, 180.0))
    max_zoom: float = field(metadata=_rng(0.0, 0.5))
    contrast: float = field(metadata=_rng(0.0, 1.0))
    ema: float = field(metadata=_rng(0.0, 0.9999))
    ensemble: int = field(metadata=_rng(1, 16))
    tta_shift: float = field(metadata=_rng(0.0, 8.0))
    device: Device

    def __post_init__(self) -> None:
        if self.pretrained and self.arch not in BACKBONES:
            raise ParamsError(
                f"train.pretrained = true: {self.arch} has no ImageNet weights; "
                f"train.arch must be one of {list(BACKBONES)}"
            )
        if self.freeze and not self.pretrained:
            raise ParamsError(
                "train.freeze = true trains only the head, on a backbone that must have been "
                "trained already: set train.pretrained: true too"
            )


@dataclass(frozen=True)
class EvaluateParams:
    register_as: str | None = field(metadata={"pattern": NAME})
    batch_size: int = _pos()
    threshold: float = field(metadata=_rng(0.0, 1.0, lo_open=True))
    bootstrap_resamples: int = field(metadata=_rng(100))
    ci_level: float = field(metadata=_rng(0.5, 0.999))
    calibration_bins: int = field(metadata=_rng(2, 100))
    error_grid: int = _pos()


@dataclass(frozen=True)
class ExplainParams:
    per_group: int = field(metadata=_rng(1, 32))


@dataclass(frozen=True)
class ExportParams:
    opset: int = field(metadata=_rng(18, 23))
    max_abs_diff: float = field(metadata=_rng(0.0, 1.0, lo_open=True))


@dataclass(frozen=True)
class Params:
    seed: int = field(metadata=_rng(0))
    mixup: float = field(metadata=_rng(0.0))
    study: str | None = field(metadata={"pattern": NAME})
    data: DataParams
    split: SplitParams
    eda: EdaParams
    reference: ReferenceParams
    gan: GanParams
    synthesize: SynthesizeParams
    fuse: FuseParams
    train: TrainParams
    evaluate: EvaluateParams
    explain: ExplainParams
    export: ExportParams


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ParamsError(f"{where} = {value!r}: must be one of {list(allowed)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(value, inner, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple and typing.get_args(tp)[-1] is Ellipsis:  # any length, distinct items
        (inner, _) = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(set(map(repr, value))) != len(value):
            raise ParamsError(f"{where} = {value!r}: expected a list of distinct values")
        return tuple(_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ParamsError(f"{where} = {value!r}: expected a list of {len(args)} values")
        return tuple(
            _check_type(v, a, f"{where}[{i}]")
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
        raise ParamsError(
            f"{where} = {value!r}: expected {tp.__name__}, got {type(value).__name__}"
        )
    return value


def _check_range(value: Any, meta: typing.Mapping, where: str) -> None:
    if meta.get("regex"):
        try:
            re.compile(value)
        except re.error as err:
            raise ParamsError(f"{where} = {value!r}: not a regular expression ({err})") from None
    pattern = meta.get("pattern")
    if pattern is not None and value is not None and not re.fullmatch(pattern, value):
        raise ParamsError(f"{where} = {value!r}: must match {pattern}")
    lo, hi, lo_open = meta.get("lo"), meta.get("hi"), meta.get("lo_open", False)
    if value is None or (lo is None and hi is None):
        return
    bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
    bad_hi = hi is not None and value > hi
    if bad_lo or bad_hi:
        left = "(" if lo_open else "["
        rng = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ParamsError(f"{where} = {value!r}: out of range, allowed {rng}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    missing = sorted(set(fields) - set(raw))
    if missing:
        raise ParamsError(f"{where}: missing key(s) {missing}; every knob must be set")
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        values[name] = _check_type(raw[name], hints[name], key)
        _check_range(values[name], f.metadata, key)
    return cls(**values)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; errors name the file, key, value and allowed range."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found (run from the repo root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    try:
        return _build(Params, raw, "params")
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a params dataclass (or dict) to {'gan.lr': 0.0002, ...} for logging."""
    d = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    out: dict[str, Any] = {}
    for name, value in d.items():
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


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


def _value(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def stage_slice(params: Params, stage: str) -> dict[str, Any]:
    """The params `stage` may read, as plain JSON-able data, with `enabled`."""
    if stage in GAN_STAGES and params.fuse.method != "gan":
        return {"enabled": False}
    out: dict[str, Any] = {"enabled": True}
    for key in STAGE_PARAMS[stage]:
        head, _, sub = key.partition(".")
        if sub:
            out.setdefault(head, {})[sub] = getattr(getattr(params, head), sub)
        else:
            out[head] = _value(getattr(params, head))
    made_by = [k for k in PROVENANCE.get(stage, ()) if k != "gan" or params.fuse.method == "gan"]
    if made_by:
        out["provenance"] = {k: _value(getattr(params, k)) for k in made_by}
    return json.loads(json.dumps(out))  # as written and read back: tuples become lists


class StageParams:
    """One stage's slice, typed as in `Params`; reading a param outside the slice is an error."""

    def __init__(self, stage: str, raw: dict[str, Any], values: dict[str, Any]) -> None:
        self._stage, self._values = stage, values
        self.enabled: bool = raw["enabled"]
        self.raw = raw  # the slice as written, for logging

    def flat(self) -> dict[str, Any]:
        """The slice's params as {'train.lr': 0.003, ...} (without `enabled`), for MLflow.

        The provenance params are logged under their own names (`mixup`, `train.lr`).
        """
        own = {k: v for k, v in self.raw.items() if k not in ("enabled", "provenance")}
        return {**flatten(self.raw.get("provenance", {})), **flatten(own)}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"stage {self._stage} reads params.{name}, which its slice lacks "
                "(add it to STAGE_PARAMS in pneumogan/core/params.py)"
            ) from None


def load_slice(path: str | Path, stage: str) -> StageParams:
    """Read a slice written by `check_params`, re-checking every value against `Params`."""
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
    if not raw["enabled"]:
        return StageParams(stage, raw, {})
    hints = typing.get_type_hints(Params)
    fields = {f.name: f for f in dataclasses.fields(Params)}
    values: dict[str, Any] = {}
    for key in STAGE_PARAMS[stage]:
        head, _, sub = key.partition(".")
        where = f"{path}: {head}"
        if head not in raw:
            raise ParamsError(f"{where}: missing from the slice; rerun dvc repro")
        if not sub:
            values[head] = _check_type(raw[head], hints[head], where)
            _check_range(values[head], fields[head].metadata, where)
            continue
        section = hints[head]
        sub_field = {f.name: f for f in dataclasses.fields(section)}[sub]
        value = _check_type(raw[head][sub], typing.get_type_hints(section)[sub], f"{where}.{sub}")
        _check_range(value, sub_field.metadata, f"{where}.{sub}")
        values.setdefault(head, types.SimpleNamespace())
        setattr(values[head], sub, value)
    return StageParams(stage, raw, values)
