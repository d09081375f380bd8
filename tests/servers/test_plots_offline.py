"""`dvc plots show` and `dvc plots diff` write pages whose vega charts render offline.

DVC's own page loads vega, vega-lite and vega-embed from a CDN; `.dvc/config` names
vendor/vega/plots.html instead (`plots.html_template`), the same page with the three builds
inlined by scripts/vendor_vega.py. The browser test builds a scratch git + DVC repo with the
project's .dvc/config, the template and the plots of dvc.yaml whose files are at hand (the
committed metrics/eda and metrics/eval ones at least), writes the pages with the real `dvc`
and opens them in Debian's Chromium (`apt-get install chromium`) through Playwright, with
every request that is not file:// aborted: every vega spec on a page must draw a chart. DVC's
default page, written from the same plots as a control, draws none there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from configobj import ConfigObj
from dvc_render.html import PAGE_HTML

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
DVC = [sys.executable, "-m", "dvc"]
TABLES = {".csv", ".tsv"}


def _load_script():
    spec = importlib.util.spec_from_file_location("vendor_vega", ROOT / "scripts/vendor_vega.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vendor = _load_script()


def test_template_is_the_recorded_builds():
    assert vendor.check() == [], "run: uv run python scripts/vendor_vega.py verify"


def test_dvc_config_names_the_template():
    """DVC joins a relative `plots.html_template` to .dvc/ (dvc/commands/plots.py)."""
    value = ConfigObj(str(ROOT / ".dvc/config"))["plots"]["html_template"]
    assert Path(os.path.normpath(ROOT / ".dvc" / value)) == vendor.TEMPLATE
    page = vendor.TEMPLATE.read_text(encoding="utf-8")
    assert "{plot_divs}" in page  # dvc-render refuses a template without it
    assert "{scripts}" not in page  # where DVC puts its CDN <script> tags
    assert '<meta charset="utf-8">' in page  # the builds hold non-ASCII characters


def test_a_build_that_would_end_its_script_element_is_refused():
    for bad in ("x='</script>'", "a<!--b", "'{plot_divs}'"):
        with pytest.raises(ValueError, match="its build holds"):
            vendor.render([("vega", "1.0.0", bad)])


# ---- in a real browser --------------------------------------------------------------------


def has_rows(path: str) -> bool:
    lines = (ROOT / path).read_text().splitlines()
    return len([line for line in lines if line.strip()]) > 1


def plot_definitions() -> tuple[list[dict], list[str], int]:
    """dvc.yaml's plots whose files are here, as top-level definitions; their files; and how
    many of them are tables with rows, each one vega chart (revisions overlaid)."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    plots, files, tables = [], [], 0
    for stage in pipeline["stages"].values():
        for entry in stage.get("plots", []):
            path, props = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            if (ROOT / path).is_file():
                plots.append({path: {k: v for k, v in (props or {}).items() if k != "cache"}})
                files.append(path)
                tables += Path(path).suffix in TABLES and has_rows(path)
    for entry in pipeline.get("plots", []):
        (props,) = entry.values()
        y = props.get("y")
        needs = list(y) if isinstance(y, dict) else []
        if needs and all((ROOT / path).is_file() for path in needs):
            plots.append(entry)
            files.extend(needs)
            tables += all(has_rows(path) for path in needs)
    return plots, sorted(set(files)), tables


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def scratch_repo(tmp_path: Path) -> tuple[Path, dict, int]:
    """A committed git + DVC repo with the project's plots, .dvc/config and template."""
    plots, files, tables = plot_definitions()
    repo = tmp_path / "repo"
    for path in [*files, vendor.TEMPLATE.relative_to(ROOT).as_posix()]:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, repo / path)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "DVC_ROOT" and not k.startswith("PYTEST")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_COMMITTER_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_EMAIL="t@t",
        DVC_NO_ANALYTICS="1",
    )
    sh(["git", "init", "-q"], repo, env)
    sh([*DVC, "init", "-q"], repo, env)
    shutil.copy(ROOT / ".dvc/config", repo / ".dvc/config")  # the project's DVC settings
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "plots"], repo, env)
    return repo, env, tables


def vega_specs(page_file: Path) -> dict[str, bool]:
    """Each vega spec's container id on a page DVC wrote, and whether the spec holds data:
    DVC writes an empty spec for a plot file with no table (a bare CSV header, a JSON of
    figures), which has nothing to draw."""
    html = page_file.read_text(encoding="utf-8")
    specs = re.findall(r"var spec = (.*);\n\s*vegaEmbed\('#([^']+)', spec\);", html)
    assert len(specs) == html.count("vegaEmbed("), "DVC's vega <div> is not what this reads"
    return {id_: bool(json.loads(spec).get("data", {}).get("values")) for spec, id_ in specs}


def open_offline(browser, page_file: Path, timeout_error: type[Exception]) -> dict:
    """Open a page with every request that is not file:// aborted; count the specs with data
    and the charts drawn for them (a visible svg or canvas in the vega-embed container)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    aborted, errors = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            aborted.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(page_file.as_uri(), wait_until="load")
    specs = vega_specs(page_file)
    ids = [id_ for id_, has_data in specs.items() if has_data]
    count = """ids => ids.filter(id => {
        const el = document.getElementById(id);
        return el && el.classList.contains('vega-embed') && [...el.querySelectorAll(
            'svg.marks, canvas.marks')].some(c => c.getBoundingClientRect().width > 0);
    }).length"""
    if not errors:  # a page whose scripts failed draws nothing: no need to wait for it
        with contextlib.suppress(timeout_error):  # the counts below say what is missing
            page.wait_for_function(f"ids => ({count})(ids) === ids.length", arg=ids, timeout=30_000)
    drawn = page.evaluate(count, ids)
    page.close()
    return {
        "specs": len(specs),
        "charts": len(ids),
        "drawn": drawn,
        "aborted": aborted,
        "errors": errors,
    }


@pytest.mark.slow
def test_plots_pages_render_every_vega_chart_offline(tmp_path):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")

    repo, env, tables = scratch_repo(tmp_path)
    assert tables > 0, "no plotted table with rows in metrics/"
    sh([*DVC, "plots", "show", "-o", "show"], repo, env)  # plots.html_template from .dvc/config
    sh([*DVC, "plots", "diff", "HEAD", "-o", "diff"], repo, env)  # HEAD beside the workspace
    default = tmp_path / "dvc_default.html"  # DVC's own page, from dvc-render
    default.write_text(PAGE_HTML)
    sh([*DVC, "plots", "show", "-o", "control", "--html-template", str(default)], repo, env)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            pages = {
                name: open_offline(browser, repo / name / "index.html", sync_api.TimeoutError)
                for name in ("show", "diff", "control")
            }
        finally:
            browser.close()

    for name in ("show", "diff"):
        got = pages[name]
        assert got["charts"] >= tables, (name, got)  # a JSON plot may hold a table too
        assert got["drawn"] == got["charts"], (name, got)
        assert got["aborted"] == [] and got["errors"] == [], (name, got)
    control = pages["control"]
    assert control["charts"] >= tables and control["drawn"] == 0, control
    assert any("cdn.jsdelivr.net" in url for url in control["aborted"]), control
