"""Typed, validated view of params.yaml: every knob is required, unknown keys are errors."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

SIZES = (28, 64, 128, 224)
DEVICES = ("auto", "cpu", "cuda", "mps")
NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"  # study names: MLflow experiment and git ref safe


class ParamsError(ValueError):
    """A params file is missing, malformed or holds a value outside its allowed range."""


def _rng(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict:
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


def _pos() -> Any:
    return field(metadata=_rng(0, lo_open=True))


@dataclass(frozen=True)
class DataParams:
    size: Literal[28, 64, 128, 224]


@dataclass(frozen=True)
class SplitParams:
    train_per_class: int | None = field(metadata=_rng(1))
    keep_ratio: bool


@dataclass(frozen=True)
class ReferenceParams:
    width: int = _pos()
    epochs: int = _pos()
    batch_size: int = _pos()
    lr: float = _pos()
    device: Literal["auto", "cpu", "cuda", "mps"]


@dataclass(frozen=True)
class GanParams:
    variant: Literal["dcgan", "sn_hinge"]
    latent_dim: int = _pos()
    width: int = _pos()
    epochs: int = _pos()
    batch_size: int = _pos()
    lr: float = _pos()
    beta1: float = field(metadata=_rng(0.0, 1.0))
    sample_every: int = _pos()
    eval_every: int = _pos()
    device: Literal["auto", "cpu", "cuda", "mps"]


@dataclass(frozen=True)
class SynthesizeParams:
    batch_size: int = _pos()
    nearest_k: int = _pos()
    kid_subsets: int = _pos()
    copy_percentile: float = field(metadata=_rng(0.0, 100.0, lo_open=True))


@dataclass(frozen=True)
class FuseParams:
    method: Literal["gan", "oversample", "none"]
    target_ratio: float = field(metadata=_rng(0.0, 1.0, lo_open=True))


@dataclass(frozen=True)
class TrainParams:
    arch: Literal["resnet_small", "resnet18", "resnet34"]
    width: int = _pos()
    epochs: int = _pos()
    batch_size: int = _pos()
    lr: float = _pos()
    weight_decay: float = field(metadata=_rng(0.0))
    patience: int = _pos()
    max_shift: float = field(metadata=_rng(0.0, 0.5))
    max_rotate: float = field(metadata=_rng(0.0, 180.0))
    device: Literal["auto", "cpu", "cuda", "mps"]


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = _pos()
    threshold: float = field(metadata=_rng(0.0, 1.0, lo_open=True))
    bootstrap_resamples: int = field(metadata=_rng(100))
    ci_level: float = field(metadata=_rng(0.5, 0.999))
    calibration_bins: int = field(metadata=_rng(2, 100))
    error_grid: int = _pos()


@dataclass(frozen=True)
class Params:
    seed: int = field(metadata=_rng(0))
    mixup: float = field(metadata=_rng(0.0))
    study: str | None = field(metadata={"pattern": NAME})
    data: DataParams
    split: SplitParams
    reference: ReferenceParams
    gan: GanParams
    synthesize: SynthesizeParams
    fuse: FuseParams
    train: TrainParams
    evaluate: EvaluateParams


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or isinstance(value, bool):
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
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
        raise ParamsError(
            f"{where} = {value!r}: expected {tp.__name__}, got {type(value).__name__}"
        )
    return value


def _check_range(value: Any, meta: typing.Mapping, where: str) -> None:
    pattern = meta.get("pattern")
    if pattern is not None and value is not None and not re.fullmatch(pattern, value):
        raise ParamsError(
            f"{where} = {value!r}: must match {pattern} (letters, digits, '_' and '-')"
        )
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
