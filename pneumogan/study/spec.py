"""A study file: the grid of DVC experiments (methods × caps on the real data × seeds).

A method is one of the balancing methods that add no synthetic images (`none`, `oversample`,
`weighted`) or a generator arm: `fuse.method: gan` with the arm's own generator params (the
study's `generators`, by default only `gan`, params.yaml's generator as it is).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pneumogan.core.errors import ParamsError
from pneumogan.core.params import NAME

ALL = "all"  # the cap label of experiments on all the real training images
# Params the study sets per experiment; a study's `set` may not touch them.
OWNED = ("study", "seed", "fuse.method", "split.train_per_class", "split.keep_ratio")
PLAIN = ("none", "oversample", "weighted")  # fuse.method values that add no synthetic images
ARM = r"[a-z][a-z0-9_]{0,31}"  # a generator arm's name (no '-': it sits inside experiment names)


@dataclass(frozen=True)
class Cell:
    """One experiment of a study: a balancing method, a cap on the real data, a seed."""

    method: str
    cap: int | None
    seed: int

    def name(self, study: str) -> str:
        return f"{study}-{self.method}-{self.cap or ALL}-s{self.seed}"

    def overrides(self, study: str) -> list[str]:
        """The study, seed and cap `-S` overrides of its `dvc exp run` (the method's are the
        study's: `Study.overrides`)."""
        out = [f"study={study}", f"seed={self.seed}"]
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
    # generator arms: name -> its `-S` overrides beyond fuse.method=gan
    generators: tuple[tuple[str, tuple[str, ...]], ...] = (("gan", ()),)
    # a commit whose params.yaml and pipeline code the experiments ran with; None: this checkout's
    pipeline: str | None = None
    # the report's name (reports/<report>.md); two study files of one name (one ledger, its
    # experiments told apart by their pinned pipelines) each keep their own report
    report: str = ""
    # cells too slow for a CPU: method -> the caps (None: all the images) that need a GPU
    gpu: tuple[tuple[str, tuple[int | None, ...]], ...] = ()

    @property
    def report_name(self) -> str:
        return self.report or self.name

    def needs_gpu(self, cell: Cell) -> bool:
        return cell.cap in dict(self.gpu).get(cell.method, ())

    def cells(
        self, seeds: tuple[int, ...] | None = None, methods: tuple[str, ...] | None = None
    ) -> list[Cell]:
        """Every experiment (or those of some seeds and methods), seed by seed, so that a
        partial run leaves whole seeds."""
        keep = set(methods or (*self.methods, *self.cap_methods))
        out = []
        for seed in seeds or self.seeds:
            out += [Cell(m, None, seed) for m in self.methods if m in keep]
            out += [Cell(m, cap, seed) for cap in self.caps for m in self.cap_methods if m in keep]
        return out

    def method_overrides(self, method: str) -> list[str]:
        """The `-S` overrides that make a method: fuse.method, and a generator arm's params."""
        if method in PLAIN:
            return [f"fuse.method={method}"]
        return ["fuse.method=gan", *dict(self.generators)[method]]

    def overrides(self, cell: Cell) -> list[str]:
        """Every `-S` of the cell's experiment: study, seed and cap, its method's, then the
        study's `set`."""
        out = cell.overrides(self.name)
        return [*out[:2], *self.method_overrides(cell.method), *out[2:], *self.set]


def load_study(path: Path) -> Study:
    """Read a study file; errors name the file, key and value."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ParamsError(f"{path}: cannot read study file: {err}") from None
    keys = {"name", "seeds", "methods", "caps", "cap_methods", "set"}
    optional = {"generators", "pipeline", "report", "gpu"}
    if not isinstance(raw, dict) or not keys <= set(raw) <= keys | optional:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ParamsError(
            f"{path}: expected keys {sorted(keys)} (and optionally {sorted(optional)}), got {got}"
        )

    def assignments(key: str, value, owned: tuple[str, ...]) -> tuple[str, ...]:
        """A mapping of param: value as `-S` overrides; the owned params may not appear."""
        value = value or {}
        if not isinstance(value, dict):
            raise ParamsError(f"{path}: {key} = {value!r}: expected a mapping of param: value")
        if clash := sorted(set(owned) & set(value)):
            raise ParamsError(f"{path}: {key}: {clash} are set per experiment by the study")
        return tuple(f"{k}={json.dumps(v)}" for k, v in value.items())

    gens = raw.get("generators", {"gan": {}})
    if not isinstance(gens, dict) or not gens:
        raise ParamsError(f"{path}: generators = {gens!r}: expected a mapping of name: params")
    for arm in gens:
        if not isinstance(arm, str) or not re.fullmatch(ARM, arm) or arm in PLAIN:
            raise ParamsError(
                f"{path}: generators: {arm!r}: a name must match {ARM} and not be one of "
                f"{list(PLAIN)}"
            )
    generators = tuple(
        (arm, assignments(f"generators.{arm}", params, OWNED)) for arm, params in gens.items()
    )
    known = (*PLAIN, *gens)
    extra = assignments("set", raw["set"], OWNED)
    for arm, params in generators:
        if clash := sorted(
            {a.partition("=")[0] for a in params} & {a.partition("=")[0] for a in extra}
        ):
            raise ParamsError(f"{path}: generators.{arm}: {clash} also in set")

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
        if not isinstance(v, list) or not set(v) <= set(known) or len(set(v)) != len(v):
            raise ParamsError(f"{path}: {key} = {v!r}: expected distinct items of {list(known)}")
        return tuple(v)

    name = raw["name"]
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        raise ParamsError(f"{path}: name = {name!r}: must match {NAME}")
    pipeline = raw.get("pipeline")
    if pipeline is not None and not (
        isinstance(pipeline, str) and re.fullmatch(r"[0-9a-f]{7,40}", pipeline)
    ):
        raise ParamsError(
            f"{path}: pipeline = {pipeline!r}: expected a commit id (7 to 40 hex digits) or null"
        )
    report_name = raw.get("report") or ""
    if report_name and not re.fullmatch(NAME, str(report_name)):
        raise ParamsError(f"{path}: report = {report_name!r}: must match {NAME}")
    gpu_raw = raw.get("gpu") or {}
    if not isinstance(gpu_raw, dict) or not all(
        m in known
        and isinstance(caps, list)
        and all(c == ALL or (isinstance(c, int) and not isinstance(c, bool)) for c in caps)
        for m, caps in gpu_raw.items()
    ):
        raise ParamsError(
            f"{path}: gpu = {gpu_raw!r}: expected a mapping of method: [caps], a cap an "
            f"integer or {ALL!r}, a method one of {list(known)}"
        )
    gpu = tuple((m, tuple(None if c == ALL else c for c in caps)) for m, caps in gpu_raw.items())
    study = Study(
        name=name,
        seeds=ints("seeds", 0),
        methods=methods("methods"),
        caps=ints("caps", 1),
        cap_methods=methods("cap_methods"),
        set=extra,
        generators=generators,
        pipeline=pipeline,
        report=report_name,
        gpu=gpu,
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
