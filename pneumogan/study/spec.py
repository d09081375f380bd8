"""A study file: the grid of DVC experiments (methods × caps on the real data × seeds)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pneumogan.choices import METHODS
from pneumogan.errors import ParamsError
from pneumogan.params import NAME

ALL = "all"  # the cap label of experiments on all the real training images
# Params the study sets per experiment; a study's `set` may not touch them.
OWNED = ("study", "seed", "fuse.method", "split.train_per_class", "split.keep_ratio")


@dataclass(frozen=True)
class Cell:
    """One experiment of a study: a balancing method, a cap on the real data, a seed."""

    method: str
    cap: int | None
    seed: int

    def name(self, study: str) -> str:
        return f"{study}-{self.method}-{self.cap or ALL}-s{self.seed}"

    def overrides(self, study: str) -> list[str]:
        """The `-S` overrides of its `dvc exp run` (everything else as in params.yaml)."""
        out = [f"study={study}", f"seed={self.seed}", f"fuse.method={self.method}"]
        if self.cap is not None:
            out += [f"split.train_per_class={self.cap}", "split.keep_ratio=true"]
        return out


@dataclass(frozen=True)
class Study:
    name: str
    seeds: tuple[int, ...]
    methods: tuple[str, ...]  # compared on all the real training data
    caps: tuple[int, ...]  # low-data regime: minority images kept, ratio kept
    cap_methods: tuple[str, ...]  # compared at every cap
    set: tuple[str, ...]  # extra `-S` overrides for every experiment

    def cells(self, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        """Every experiment, seed by seed (so a partial run leaves whole seeds)."""
        out = []
        for seed in seeds or self.seeds:
            out += [Cell(m, None, seed) for m in self.methods]
            out += [Cell(m, cap, seed) for cap in self.caps for m in self.cap_methods]
        return out

    def overrides(self, cell: Cell) -> list[str]:
        """Every `-S` of the cell's experiment: its own, then the study's `set`."""
        return [*cell.overrides(self.name), *self.set]


def load_study(path: Path) -> Study:
    """Read a study file; errors name the file, key and value."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ParamsError(f"{path}: cannot read study file: {err}") from None
    keys = {"name", "seeds", "methods", "caps", "cap_methods", "set"}
    if not isinstance(raw, dict) or set(raw) != keys:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ParamsError(f"{path}: expected keys {sorted(keys)}, got {got}")

    def ints(key: str, lo: int) -> tuple[int, ...]:
        v = raw[key] or []
        if not isinstance(v, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= lo for i in v
        ):
            raise ParamsError(f"{path}: {key} = {v!r}: expected a list of integers >= {lo}")
        if len(set(v)) != len(v):
            raise ParamsError(f"{path}: {key} = {v!r}: repeated values")
        return tuple(v)

    def methods(key: str) -> tuple[str, ...]:
        v = raw[key] or []
        if not isinstance(v, list) or not set(v) <= set(METHODS) or len(set(v)) != len(v):
            raise ParamsError(f"{path}: {key} = {v!r}: expected distinct items of {METHODS}")
        return tuple(v)

    name = raw["name"]
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        raise ParamsError(f"{path}: name = {name!r}: must match {NAME}")
    extra = raw["set"] or {}
    if not isinstance(extra, dict):
        raise ParamsError(f"{path}: set = {extra!r}: expected a mapping of param: value")
    if clash := sorted(set(OWNED) & set(extra)):
        raise ParamsError(f"{path}: set: {clash} are set per experiment by the study")
    study = Study(
        name=name,
        seeds=ints("seeds", 0),
        methods=methods("methods"),
        caps=ints("caps", 1),
        cap_methods=methods("cap_methods"),
        set=tuple(f"{k}={json.dumps(v)}" for k, v in extra.items()),
    )
    if not study.seeds or not (study.methods or study.caps):
        raise ParamsError(f"{path}: a study needs seeds and methods or caps")
    if study.caps and not study.cap_methods:
        raise ParamsError(f"{path}: caps given but no cap_methods")
    return study


def apply_overrides(params: dict, overrides: list[str]) -> dict:
    """params.yaml as a nested dict with `key=value` overrides applied (values parsed as YAML,
    as `dvc exp run -S` does)."""
    out = json.loads(json.dumps(params))
    for item in overrides:
        key, _, text = item.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(text)
    return out
