"""dvc.yaml lists, for each stage, exactly the code it runs and the params sections it reads."""

import ast
import re
from pathlib import Path

import yaml

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


def test_package_init_is_empty():
    """Stages do not list pneumogan/__init__.py, so it must hold no code."""
    assert (ROOT / "pneumogan/__init__.py").read_text().strip() == ""


def test_stage_code_deps_match_imports():
    for name, stage in STAGES.items():
        script = f"stages/{name}.py"
        assert f"python -m stages.{name} " in stage["cmd"]
        code_deps = {d for d in stage["deps"] if d.endswith(".py")}
        assert code_deps == {script} | module_closure(ROOT / script), name


# Read by every stage for MLflow grouping only; no output depends on it, so no stage lists it
# (listing it would rerun the whole pipeline for every study).
UNDECLARED = {"study"}


def test_params_sections_exist_and_are_read():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    used = set()
    for name, stage in STAGES.items():
        for entry in stage["params"]:
            head, *rest = entry.split(".")
            assert head in params, f"{name}: unknown params entry {entry}"
            if rest:
                assert rest[0] in params[head]
            used.add(head)
        source = (ROOT / f"stages/{name}.py").read_text()
        for entry in stage["params"]:
            assert re.search(rf"params\.{re.escape(entry)}\b", source), (name, entry)
        for section, key in re.findall(r"\bparams\.(\w+)(?:\.(\w+))?", source):
            if section in UNDECLARED:
                continue
            listed = section in stage["params"] or f"{section}.{key}" in stage["params"]
            assert listed, f"{name} reads params.{section}.{key} but dvc.yaml does not list it"
    assert used | UNDECLARED == set(params), f"params never read: {set(params) - used}"


def test_metrics_and_plots_are_committed_not_cached():
    for stage in STAGES.values():
        for kind in ("metrics", "plots"):
            for entry in stage.get(kind, []):
                ((path, opts),) = entry.items()
                assert opts == {"cache": False} and path.startswith("metrics/")
        for entry in stage.get("outs", []):
            if isinstance(entry, dict):
                ((path, opts),) = entry.items()
                assert path.startswith("metrics/") and opts == {"cache": False}
            else:
                assert not entry.startswith("metrics/")
