"""dvc.yaml lists, for each stage, exactly the code it runs and the params sections it reads."""

import ast
import re
from pathlib import Path

import yaml

from pneumogan.core.params import STAGE_PARAMS
from tests.conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def package_imports(path: Path) -> set[str]:
    """pneumogan modules a file imports directly (a package's module or the package's own)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pneumogan"):
            for alias in node.names:  # `from pneumogan.data import split` imports a module
                child = f"{node.module}.{alias.name}"
                found.add(child if module_file(child).is_file() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pneumogan.")}
    return {m for m in found if module_file(m).is_file()}


def module_file(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def module_closure(script: Path) -> set[str]:
    """Every package file the script runs, as repo-relative paths."""
    todo, seen = list(package_imports(script)), set()
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            todo += package_imports(module_file(mod))
    return {mod.replace(".", "/") + ".py" for mod in seen}


def covers(dep: str, path: str) -> bool:
    """A file dep covers itself; a folder dep (a wing) covers every file under it."""
    return path == dep or path.startswith(dep.rstrip("/") + "/")


def code_deps(stage: dict) -> list[str]:
    return [d for d in stage["deps"] if d.startswith(("pneumogan/", "stages/"))]


def test_package_inits_are_empty():
    """Stages do not list the packages' __init__.py files, so they must hold no code."""
    for init in (ROOT / "pneumogan").rglob("__init__.py"):
        assert init.read_text().strip() == "", init


# Modules that hand a file to MLflow to run (models from code): that file is code too.
HANDED_OVER = {"pneumogan/serve/mlflow_model.py": "pneumogan/serve/mlflow_entry.py"}


def test_stage_code_deps_cover_its_imports_and_nothing_else():
    """Each stage depends on every file it runs, and each code dep holds a file it runs."""
    for name, stage in STAGES.items():
        script = f"stages/{name}.py"
        assert f"python -m stages.{name} " in stage["cmd"]
        closure = module_closure(ROOT / script)
        closure |= {HANDED_OVER[m] for m in closure if m in HANDED_OVER}
        deps = code_deps(stage)
        assert script in deps, name
        uncovered = {f for f in closure if not any(covers(d, f) for d in deps)}
        assert not uncovered, f"{name} runs {sorted(uncovered)}, which its deps miss"
        idle = {d for d in deps if d != script and not any(covers(d, f) for f in closure)}
        assert not idle, f"{name} depends on {sorted(idle)} but runs none of it"
        for dep in deps:
            assert (ROOT / dep).exists(), f"{name}: {dep} does not exist"


def test_the_deps_check_sees_an_import_a_stage_lacks(tmp_path):
    """The check above fails when a stage imports code outside its deps."""
    script = tmp_path / "stage.py"
    script.write_text("from pneumogan.report import figures\n")
    closure = module_closure(script)
    assert "pneumogan/report/figures.py" in closure
    assert not any(covers(d, "pneumogan/report/figures.py") for d in code_deps(STAGES["train"]))


def test_cheap_code_reruns_no_expensive_stage():
    """Restyling a figure reruns no training stage; editing the app or the CLI reruns none."""
    for name in ("reference", "train_gan", "train"):
        assert not any(covers(d, "pneumogan/report/figures.py") for d in code_deps(STAGES[name]))
    for name, stage in STAGES.items():
        for cheap in ("pneumogan/serve/app.py", "pneumogan/serve/cli.py"):
            assert not any(covers(d, cheap) for d in code_deps(stage)), (name, cheap)


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
        # methods, not sections; pipeline() is every param of the run, read for MLflow only
        # (the study's grouping and registration), never for an output
        read = set(re.findall(r"\bcfg\.(\w+)", source)) - {"enabled", "flat", "raw", "pipeline"}
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
