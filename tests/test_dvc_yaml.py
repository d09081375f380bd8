"""dvc.yaml lists, for each stage, exactly the code it runs and the params sections it reads."""

import ast
import re
from pathlib import Path

import yaml

from pneumogan.params import STAGE_PARAMS
from tests.conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def package_imports(path: Path) -> set[str]:
    """pneumogan modules a file imports directly."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "pneumogan":
            found |= {f"pneumogan.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pneumogan."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pneumogan.")}
    return found


def module_closure(script: Path) -> set[str]:
    todo, seen = list(package_imports(script)), set()
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            todo += package_imports(ROOT / (mod.replace(".", "/") + ".py"))
    return {mod.replace(".", "/") + ".py" for mod in seen}


def test_package_inits_are_empty():
    """Stages do not list the packages' __init__.py files, so they must hold no code."""
    for init in (ROOT / "pneumogan").rglob("__init__.py"):
        assert init.read_text().strip() == "", init


# Modules that hand a file to MLflow to run (models from code): that file is code too.
HANDED_OVER = {"pneumogan/serving.py": "pneumogan/serving_entry.py"}


def test_stage_code_deps_match_imports():
    for name, stage in STAGES.items():
        script = f"stages/{name}.py"
        assert f"python -m stages.{name} " in stage["cmd"]
        code_deps = {d for d in stage["deps"] if d.endswith(".py")}
        closure = module_closure(ROOT / script)
        closure |= {HANDED_OVER[m] for m in closure if m in HANDED_OVER}
        assert code_deps == {script} | closure, name


def test_training_stages_do_not_import_figures():
    """Restyling a figure must rerun no training stage."""
    for name in ("reference", "train_gan", "train"):
        assert "pneumogan/figures.py" not in STAGES[name]["deps"], name


def test_only_check_params_reads_params_yaml_and_every_stage_reads_its_slice():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(STAGES["check_params"]["params"]) == set(params)
    assert set(STAGE_PARAMS) == set(STAGES) - {"check_params"}
    for name, stage in STAGES.items():
        if name == "check_params":
            continue
        assert "params" not in stage, f"{name} must depend on its slice, not on params.yaml"
        slice_file = f"data/params/{name}.json"
        assert slice_file in stage["deps"] and f"--params {slice_file}" in stage["cmd"]
        for entry in STAGE_PARAMS[name]:
            head, _, sub = entry.partition(".")
            assert head in params and (not sub or sub in params[head]), (name, entry)
        # What the script reads from its slice is what the slice holds.
        source = (ROOT / f"stages/{name}.py").read_text()
        heads = {e.partition(".")[0] for e in STAGE_PARAMS[name]}
        read = set(re.findall(r"\bcfg\.(\w+)", source)) - {"enabled", "flat", "raw"}
        assert read <= heads, f"{name} reads {read - heads} outside its slice"


def test_metrics_and_plots_are_committed_and_nothing_else_is_uncached():
    """DVC keeps no run cache for a stage with a plain `cache: false` output."""
    for name, stage in STAGES.items():
        for kind in ("metrics", "plots"):
            for entry in stage.get(kind, []):
                ((path, opts),) = entry.items()
                assert opts["cache"] is False and path.startswith("metrics/"), (name, path)
        for entry in stage.get("outs", []):
            path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            assert opts.get("cache", True), f"{name}: {path} is a plain uncached output"
