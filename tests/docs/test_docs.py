"""README.md and the docs/ site say what the committed files say.

Every figure stands in a generated block (`<!-- name:begin -->` ... `<!-- name:end -->`)
that scripts/update_docs.py renders from committed files, and each block must equal its
rendering. Outside blocks, prose holds no figure; a claim in words that rests on a committed
file is checked against it below.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

FIX = "run: uv run python scripts/update_docs.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("update_docs", ROOT / "scripts/update_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs = _load_script()
PAGES = docs.pages()
README = (ROOT / "README.md").read_text()


def rel(page) -> str:
    return page.relative_to(ROOT).as_posix()


# ---- generated blocks ----------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_block_is_what_the_script_renders_from_committed_files(page):
    for name, body in docs.blocks(page.read_text()):
        assert name in docs.RENDER, f"{rel(page)}: unknown block {name!r}"
        assert body == docs.render(name), f"{rel(page)}: block {name} is stale; {FIX}"


def test_blocks_are_well_formed():
    """Every begin marker has its end marker, so no block escapes the check above."""
    for page in PAGES:
        text = page.read_text()
        begins = re.findall(r"^<!-- ([\w-]+):begin -->$", text, flags=re.M)
        assert sorted(begins) == sorted(n for n, _ in docs.blocks(text)), rel(page)
        assert len(re.findall(r"^<!-- [\w-]+:end -->$", text, flags=re.M)) == len(begins)


def test_update_rewrites_a_stale_block_and_check_finds_it(tmp_path):
    page = "intro\n<!-- export-parity:begin -->\nold\n<!-- export-parity:end -->\nend\n"
    fresh = docs.rendered(page)
    assert fresh.startswith("intro\n<!-- export-parity:begin -->\nOn the committed model")
    assert docs.rendered(fresh) == fresh
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(page)
    generated = "<!-- results:begin -->\nx\n<!-- results:end -->\n"
    (tmp_path / "docs" / "params.md").write_text(generated)
    assert docs.stale(tmp_path) == ["README.md: export-parity"]  # params.md is not ours


# ---- no figure in prose ----------------------------------------------------------------------

FIGURE = re.compile(
    r"(?<![\w.\-/])("
    r"\d+\.\d+(?:e-?\d+)?"  # a decimal
    r"|\d+(?:\.\d+)?\s?%"  # a percentage
    r"|\d+(?:\.\d+)?\s?(?:ms|s|min|minutes?|seconds?|hours?|KiB|MiB|GiB|MB|GB)\b"  # time, memory
    r"|\d+\s(?:real\s|test\s|training\s)?(?:images|experiments|runs|cells|seeds|epochs)\b"
    r")"
)
NOT_FIGURES = re.compile(  # versions, licences and addresses, not measurements
    r"(?:Python ≥|DVC|torch|CC BY)\s+\d+(?:\.\d+)+|\b\d+\.\d+\.\d+\.\d+\b"
)
# Phrases with digits that are rules or definitions, not results (page -> phrases).
DEFINITIONS = {
    "docs/studies/recipe.md": ["in at least 2 of 3 seeds"],
}


def prose(text: str) -> str:
    """The page without its generated blocks, code, comments and link targets."""
    text = docs.BLOCK.sub("", text)
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)  # fenced code
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    return re.sub(r"https?://\S+", "", text)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_no_figure_stands_outside_a_generated_block(page):
    text = prose(page.read_text())
    for phrase in DEFINITIONS.get(rel(page), []):
        assert phrase in text, f"{rel(page)}: {phrase!r} is gone; drop it from DEFINITIONS"
        text = text.replace(phrase, "")
    text = NOT_FIGURES.sub("", text)
    found = [m.group(0) for m in FIGURE.finditer(text)]
    assert not found, (
        f"{rel(page)}: figures typed in prose: {found}. Render them in a block "
        "(scripts/update_docs.py) or say it without the number."
    )


def test_the_figure_scan_sees_figures():
    text = prose("AUC 0.981, 12% of 624 images in 3 min 2 s.\n`mixup=0.3` Python ≥ 3.11\n")
    text += prose("on 127.0.0.1 (DVC\n3.67)")
    assert [m.group(0) for m in FIGURE.finditer(NOT_FIGURES.sub("", text))] == [
        "0.981",
        "12%",
        "624 images",
        "3 min",
        "2 s",
    ]


# ---- claims in words, checked against the files they rest on -------------------------------


def test_the_default_balances_by_oversampling_and_trains_no_generator():
    """README's opening: the default `fuse.method` is oversample, so no generator trains."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["fuse"]["method"] == "oversample"
    assert "`fuse.method: oversample`" in README
    assert "trains **no generator**" in README


def test_no_generator_arm_beats_oversampling_in_the_balancing_studys_first_round():
    """README, docs/index.md, generators.md and balancing.md say: at every cap, every interval
    clear of 0 between a first-round generator arm and oversampling is a loss."""
    from pneumogan.study.spec import PLAIN
    from pneumogan.study.stats import METRICS, paired_differences

    runs = docs.study_runs("balancing_v1")
    wins, losses, total = docs.verdict_counts(runs, paired_differences(runs), PLAIN, METRICS)
    assert total and losses, "the study holds no generator arm against oversample"
    assert wins == 0, "a generator arm now beats oversampling: rewrite README and the docs"
    claim = "every interval clear of 0 between a generator arm and oversampling is a\nloss"
    assert claim in README
    assert "found no generator arm that beats oversampling" in docs.render("balancing-verdict")


def test_balancing_page_claims_hold():
    """docs/studies/balancing.md, in words: on all the images and at the largest cap every
    generator arm has a lower AUC than oversampling in every seed; DiffAugment never moves
    DCGAN's AUC or balanced accuracy clear of 0; the weighted loss matches oversampling on all
    the images."""
    from pneumogan.study.spec import ALL, PLAIN
    from pneumogan.study.stats import paired_differences

    runs = docs.study_runs("balancing_v1")
    d = paired_differences(runs)
    auc = d[(d["metric"] == "auc") & (d["b"] == "oversample") & ~d["a"].isin(PLAIN)]
    largest = max(c for c in runs["cap"] if c != ALL)
    for cap in (ALL, largest):
        at = auc[auc["cap"] == cap]
        assert len(at) == 3 and (at["high"] < 0).all() and (at["a_better"] == 0).all(), cap
    headline = d["metric"].isin(["auc", "balanced_accuracy"])
    diffaug = d[(d["a"] == "gan_diffaug") & (d["b"] == "gan") & headline]
    assert ((diffaug["low"] <= 0) & (diffaug["high"] >= 0)).all()
    weighted = d[(d["a"] == "weighted") & (d["b"] == "oversample") & (d["cap"] == ALL)]
    assert ((weighted["low"] <= 0) & (weighted["high"] >= 0)).all()


def test_the_second_rounds_smallest_cap_reads_as_the_page_says():
    """docs/studies/balancing.md and README on the second round at the smallest cap: cgan's
    AUC interval against oversampling is clear of 0 on its side, progan's crosses 0, cddpm's
    and DCGAN's losses are clear; every arm's median specificity there is 0."""
    from pneumogan.study.spec import ALL
    from pneumogan.study.stats import paired_differences

    runs = docs.study_runs("balancing")
    d = paired_differences(runs)
    smallest = min(c for c in runs["cap"] if c != ALL)
    auc = d[(d["metric"] == "auc") & (d["b"] == "oversample") & (d["cap"] == smallest)]
    by = auc.set_index("a")
    assert by.loc["gan", "high"] < 0 and by.loc["cddpm", "high"] < 0
    assert by.loc["cgan", "low"] > 0
    assert by.loc["progan", "low"] <= 0 <= by.loc["progan", "high"]
    at_smallest = runs[runs["cap"] == smallest]
    assert (at_smallest.groupby("method")["specificity"].median() == 0).all()
    assert "ranks the test images better than oversampling" in README


def test_the_recipe_search_bought_nothing_clear_on_test():
    """docs/studies/default.md: every interval of today's default against the previous one
    crosses 0."""
    block = docs.render("default-vs-previous")
    intervals = re.findall(r"\[([+-][\d.]+), ([+-][\d.]+)\]", block)
    assert intervals and all(float(lo) <= 0 <= float(hi) for lo, hi in intervals)


def test_the_fixed_threshold_is_the_midpoint():
    """docs/evaluation.md calls `evaluate.threshold` the midpoint of the probability scale."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["evaluate"]["threshold"] == 0.5
    assert "midpoint" in (ROOT / "docs/evaluation.md").read_text()


# ---- the front door ---------------------------------------------------------------------------


def test_readme_is_a_front_door():
    lines = README.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"
    first = next(i for i, line in enumerate(lines, 1) if "pneumogan predict" in line)
    assert first < 80, f"the first `pneumogan predict` is on line {first}"
    assert "<!-- study-default:begin -->" in README  # the headline results, over seeds


# ---- paths and links ----------------------------------------------------------------------------

SOURCE = ("pneumogan/", "stages/", "scripts/", "tests/", "studies/", "reports/", "docs/", ".ci/")
OUTPUT = ("data/", "models/", "metrics/")


def _outputs() -> list[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return [o for s in stages.values() for o in docs._outputs(s)]


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_paths_named_in_docs_exist(page):
    """A link's target exists; a source path in code exists; an output path in code is one
    dvc.yaml declares (or lies inside one), or is committed."""
    text = page.read_text()
    links = re.findall(r"\]\(((?!https?:|#)[^)#\s]+)", text)
    missing = [link for link in links if not (page.parent / link).exists()]
    outputs = _outputs()
    for path in sorted(set(re.findall(r"`([\w.\-/]+)`", text))):
        clean = path.rstrip("/")
        if path.startswith(SOURCE):
            found = (ROOT / clean).exists()
        elif path.startswith(OUTPUT):
            inside = any(clean == o or clean.startswith(o + "/") for o in outputs)
            found = inside or (ROOT / clean).exists()
        else:
            continue
        if not found:
            missing.append(path)
    assert not missing, f"{rel(page)} names paths that do not exist: {missing}"


def test_readme_links_to_the_docs_pages():
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", README))
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages - linked <= {"docs/index.md"}, f"pages README does not link: {pages - linked}"


def test_mkdocs_builds_strictly(tmp_path):
    """Every page is in the nav, and every link and anchor resolves (as CI's build checks)."""
    if not (ROOT / "docs/params.md").exists():
        pytest.skip("docs/params.md is not generated yet (scripts/params_doc.py)")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]


def test_the_review_example_leads_with_auc_and_accuracy():
    """README's review example (reports/review, captured by scripts/review_example.py from a
    real `dvc exp run -S mixup=0.3`): the plain commands put accuracy and AUC first, and the
    review's table fits 100 columns with a verdict on every headline metric."""
    captured = ROOT / "reports/review"
    rows = (captured / "metrics_diff.txt").read_text().splitlines()
    assert [row.split()[:2] for row in rows[1:3]] == [
        ["metrics/headline.json", "accuracy"],
        ["metrics/headline.json", "auc"],
    ]
    assert {row.split()[0] for row in rows[1:]} == {"metrics/headline.json"}
    header = (captured / "exp_show.txt").read_text().splitlines()[0]
    assert [c.strip() for c in header.strip("|").split("|")][2:4] == ["accuracy", "auc"]
    review = (captured / "review.txt").read_text().splitlines()
    assert max(map(len, review)) <= 100
    verdicts = [line for line in review if line.endswith(("within noise", "better", "worse"))]
    assert len(verdicts) == 6
