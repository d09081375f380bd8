"""The study: its grid, its statistics, its report, and a tiny study through DVC's queue."""

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from pneumogan.core.errors import ParamsError
from pneumogan.report.markdown import replace_block
from pneumogan.study.render import describe_methods, headline, report
from pneumogan.study.spec import Cell, Study, apply_overrides, load_study
from pneumogan.study.stats import METRICS, paired_differences, pairs, summarise
from pneumogan.study.store import (
    Experiment,
    code_hashes,
    done,
    finished,
    is_code,
    matches,
    queue_state,
    read_ledger,
    runs_table,
)
from tests.conftest import ROOT, make_repo, sh

STUDY = {
    "name": "s",
    "seeds": [1, 2],
    "methods": ["none", "gan"],
    "caps": [10],
    "cap_methods": ["gan"],
    "set": {"train.epochs": 3},
}


def write_study(tmp_path, **changes):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **changes}))
    return path


def test_grid_names_and_overrides(tmp_path):
    study = load_study(write_study(tmp_path))
    names = [c.name("s") for c in study.cells()]
    per_seed = ["s-none-all-s{}", "s-gan-all-s{}", "s-gan-10-s{}"]
    assert names == [n.format(s) for s in (1, 2) for n in per_seed]
    assert [c.name("s") for c in study.cells((2,))] == names[3:]
    assert study.overrides(Cell("gan", 10, 1)) == [
        "study=s",
        "seed=1",
        "fuse.method=gan",
        "split.train_per_class=10",
        "split.keep_ratio=true",
        "train.epochs=3",
    ]
    assert study.overrides(Cell("none", None, 3))[2] == "fuse.method=none"
    assert study.set == ("train.epochs=3",)
    assert [c.name("s") for c in study.cells(methods=("gan",))] == [
        n.format(s) for s in (1, 2) for n in per_seed[1:]
    ]
    assert load_study(ROOT / "studies/balancing.yaml").name == "balancing"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"methods": ["gan", "smote"]}, "methods = .*expected distinct items"),
        ({"seeds": [1, 1]}, "repeated values"),
        ({"caps": [0]}, "integers >= 1"),
        ({"name": "a b"}, "name = 'a b'"),
        ({"set": {"seed": 3}}, r"\['seed'\] are set per experiment"),
        ({"extra": 1}, "expected keys"),
        ({"generators": {"none": {}}}, "generators: 'none': a name must match"),
        ({"generators": {"a-b": {}}}, "generators: 'a-b': a name must match"),
        ({"generators": {"g": {"seed": 1}}}, r"generators\.g: \['seed'\] are set per"),
        ({"generators": {"g": {"train.epochs": 1}}}, r"generators\.g: \['train\.epochs'\] also"),
        ({"generators": {"g": {}}}, r"methods = \['none', 'gan'\]: expected distinct items"),
        ({"cap_methods": []}, "caps given but no cap_methods"),
        ({"pipeline": "main"}, "pipeline = 'main': expected a commit id"),
        ({"pipeline": 1234567}, "pipeline = 1234567: expected a commit id"),
        ({"report": "a b"}, "report = 'a b': must match"),
        ({"gpu": {"smote": ["all"]}}, "gpu = .*a method one of"),
        ({"gpu": {"gan": [1.5]}}, "gpu = .*a cap an integer or 'all'"),
        ({"gpu": ["gan"]}, "gpu = .*expected a mapping"),
    ],
)
def test_bad_study_files_fail_clearly(tmp_path, changes, message):
    with pytest.raises(ParamsError, match=message):
        load_study(write_study(tmp_path, **changes))


def test_a_study_file_marks_its_gpu_cells_and_names_its_report(tmp_path):
    study = load_study(write_study(tmp_path, gpu={"gan": [10, "all"]}, report="s_v2"))
    assert study.report_name == "s_v2" and load_study(write_study(tmp_path)).report_name == "s"
    marked = [c for c in study.cells() if study.needs_gpu(c)]
    assert marked == [
        Cell("gan", None, 1),
        Cell("gan", 10, 1),
        Cell("gan", None, 2),
        Cell("gan", 10, 2),
    ]
    out = tmp_path / "r.md"
    report(study, fake_runs(), out, "cmd", gpu_left=marked[:2])
    text = out.read_text()
    assert "## Cells left for a GPU" in text and "2 cells the study file marks `gpu`" in text
    assert ["gan", "all", "1"] in table_rows(text) and ["gan", "10", "1"] in table_rows(text)
    assert "## Cells left for a GPU" not in _report_text(tmp_path, study)


def _report_text(tmp_path, study) -> str:
    out = tmp_path / "plain.md"
    report(study, fake_runs(), out, "cmd")
    return out.read_text()


def test_run_gpu_refuses_where_torch_sees_no_gpu(tmp_path, monkeypatch):
    import importlib.util

    repo, _ = _git_pipeline(tmp_path)
    path = write_study(tmp_path, gpu={"gan": ["all"]})
    spec = importlib.util.spec_from_file_location("study_script", ROOT / "scripts/study.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "cuda_available", lambda: False)
    with pytest.raises(SystemExit, match="--gpu runs the cells that need a GPU"):
        script.main(["run", "--gpu", "--study", str(path), "--root", str(repo)])


def fake_runs(diff: float = 0.02) -> pd.DataFrame:
    """Two methods, three seeds, one cap; gan = none + diff + seed noise on every metric."""
    rows = []
    for seed, noise in zip((1, 2, 3), (0.0, 0.01, -0.01), strict=True):
        for cap, n_normal in (("all", 1214), (10, 10)):
            for method, delta in (("none", 0.0), ("gan", diff + noise)):
                base = 0.8 + 0.01 * seed
                rows.append(
                    {
                        "experiment": f"s-{method}-{cap}-s{seed}",
                        "method": method,
                        "cap": cap,
                        "seed": seed,
                        "real_normal": n_normal,
                        "real_pneumonia": 3 * n_normal,
                        "synthetic": 0 if method == "none" else 2 * n_normal,
                        "oversampled": 0,
                        "minority": "normal",
                        "target_ratio": 1.0,
                        "gan_variant": "dcgan",
                        "gan_diffaugment": "",
                        "threshold": 0.5,
                        "gan_fid": 1.0 + seed,
                        "gan_copies": 0.01,
                        "gan_agreement": 0.9,
                        "gan_agreement_real": 0.95,
                        **{
                            f"gan_{k}_{name}": float("nan")
                            for name in ("normal", "pneumonia")
                            for k in ("agreement", "fid_heldout")
                        },
                        "test_images": 624,
                        **{k: base + delta for k in METRICS},
                    }
                )
    return pd.DataFrame(rows)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row in `text`, header rows included, separator rows
    (`|:---|---:|`) left out: the tables are padded to their columns' widths."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(c and set(c) <= set(":-") for c in cells):
                rows.append(cells)
    return rows


def row(text: str, *first: str) -> list[str]:
    """The first table row of `text` that starts with the cells `first`."""
    found = [r for r in table_rows(text) if r[: len(first)] == list(first)]
    assert found, f"no table row starting {first}"
    return found[0]


def test_paired_differences_match_a_t_interval():
    diffs = paired_differences(fake_runs(0.02))
    auc = diffs[(diffs["cap"] == "all") & (diffs["metric"] == "auc")].iloc[0]
    d = np.array([0.02, 0.03, 0.01])
    low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(3))
    assert (auc["a"], auc["b"], auc["n"]) == ("gan", "none", 3)
    assert auc["mean"] == pytest.approx(0.02)
    assert (auc["low"], auc["high"]) == (pytest.approx(low), pytest.approx(high))
    assert auc["a_better"] == 3
    brier = diffs[(diffs["cap"] == "all") & (diffs["metric"] == "brier")].iloc[0]
    assert brier["a_better"] == 0  # a higher Brier score is worse
    summary = summarise(fake_runs())
    assert summary.loc[("all", "gan"), ("auc", "count")] == 3
    assert summary.loc[("all", "none"), ("auc", "mean")] == pytest.approx(0.82)


def test_report_is_deterministic_and_complete(tmp_path):
    study = Study("s", (1, 2, 3), ("none", "gan"), (10,), ("none", "gan"), ())
    first, second = tmp_path / "a" / "s.md", tmp_path / "b" / "s.md"
    report(study, fake_runs(), first, "cmd")
    report(study, fake_runs().sample(frac=1, random_state=0), second, "cmd")
    text = first.read_text()
    assert text == second.read_text()
    for name in ("runs.csv", "methods.png", "low_data.png"):
        assert (first.parent / "s" / name).read_bytes() == (second.parent / "s" / name).read_bytes()
    assert "12 of the study's 12 experiments" in text
    assert "at threshold 0.5." in text and "`gan` adds DCGAN images of the normal class" in text
    assert row(text, "all", "gan − none", "3")[3].startswith("+0.020 [")
    assert "(3/3)" in text
    assert row(text, "gan", "3")[2] == "0.840 ± 0.010"
    assert "![low_data.png](s/low_data.png)" in text
    head = headline(fake_runs())
    assert row(head, "gan", "3")[2] == "0.840 ± 0.010"
    assert row(head, "gan − none", "10", "3")[3].startswith("+0.020 [")
    assert row(head, "gan − none", "1214", "3")[3].startswith("+0.020 [")


@pytest.mark.slow
def test_tiny_study_through_the_dvc_queue(tmp_path, tiny_raw_dir):
    repo, env = make_repo(tmp_path, tiny_raw_dir)
    shutil.copytree(ROOT / "scripts", repo / "scripts", ignore=shutil.ignore_patterns("__py*"))
    (repo / "studies").mkdir()
    (repo / "studies/tiny.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "seeds": [1, 2],
                "methods": ["none", "gan"],
                "caps": [],
                "cap_methods": [],
                "set": {},
            }
        )
    )
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "study"], repo, env)
    study = [sys.executable, "scripts/study.py"]

    # Four queued experiments: each stage is a fresh process (torch, MLflow), so minutes.
    log = sh([*study, "run", "--study", "studies/tiny.yaml"], repo, env, timeout=2400)
    assert "4 to run" in log
    md = repo / "reports/tiny.md"
    text = md.read_text()
    assert "from 4 of the study's 4 experiments (seeds 1, 2)" in text
    row(text, "all", "gan − none", "2")  # the paired row, over the 2 seeds
    runs = pd.read_csv(repo / "reports/tiny/runs.csv")
    assert sorted(runs["experiment"]) == sorted(
        f"tiny-{m}-all-s{s}" for m in ("none", "gan") for s in (1, 2)
    )
    assert set(runs.loc[runs["method"] == "none", "synthetic"]) == {0}
    assert set(runs.loc[runs["method"] == "gan", "synthetic"]) == {24}  # 12 normal -> 36
    assert runs["auc"].between(0, 1).all() and runs["auc"].notna().all()

    # The report is regenerated from the stored experiments, byte for byte.
    before = {p: p.read_bytes() for p in (repo / "reports").rglob("*") if p.is_file()}
    md.unlink()
    sh([*study, "report", "--study", "studies/tiny.yaml"], repo, env)
    assert {p: p.read_bytes() for p in (repo / "reports").rglob("*") if p.is_file()} == before
    assert "0 to run" in sh([*study, "run", "--study", "studies/tiny.yaml"], repo, env)

    # The ledger alone (a clone with no experiment refs) gives the same report.
    ledger = repo / "studies/results/tiny.jsonl"
    assert len(ledger.read_text().splitlines()) == 4
    sh([sys.executable, "-m", "dvc", "exp", "remove", "--all-commits"], repo, env)
    assert "tiny-" not in sh(
        [sys.executable, "-m", "dvc", "exp", "list", "--all-commits"], repo, env
    )
    md.unlink()
    sh([*study, "report", "--study", "studies/tiny.yaml"], repo, env)
    assert {p: p.read_bytes() for p in (repo / "reports").rglob("*") if p.is_file()} == before
    sh(["git", "add", "studies/results"], repo, env)
    sh(["git", "commit", "-qm", "ledger"], repo, env)

    # A commit that changes no pipeline input leaves the study complete.
    (repo / "NOTES.md").write_text("notes\n")
    sh(["git", "add", "NOTES.md"], repo, env)
    sh(["git", "commit", "-qm", "docs only"], repo, env)
    assert "4 already stored" in sh([*study, "run", "--study", "studies/tiny.yaml"], repo, env)
    # A code change does not: no stored experiment matches any more (checked, not run).
    tiny = load_study(repo / "studies/tiny.yaml")
    assert len(done(repo, tiny, tiny.cells())) == 4
    fuse_py = repo / "pneumogan/data/fuse.py"
    fuse_py.write_text(fuse_py.read_text() + "\n# changed\n")
    assert done(repo, tiny, tiny.cells()) == {}

    # The study's runs are grouped in their own MLflow experiment, tagged with the study.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    grouped = client.get_experiment_by_name("pneumogan-study-tiny")
    runs = client.search_runs([grouped.experiment_id])
    assert {r.data.tags["study"] for r in runs} == {"tiny"}
    trained = {r.data.tags["dvc_experiment"] for r in runs if r.data.tags["stage"] == "train"}
    assert trained == {f"tiny-{m}-all-s{s}" for m in ("none", "gan") for s in (1, 2)}


@pytest.mark.slow
def test_a_fresh_clone_runs_a_study_whose_cells_reuse_stages(tmp_path, tiny_raw_dir):
    """A clone has the committed dvc.lock but none of its outputs in the cache. The second cell
    reuses the first's split and reference stand-in from the run cache, which in DVC's executor
    needs the committed data/split's directory listing: `run` reproduces it first."""
    repo, env = make_repo(tmp_path, tiny_raw_dir)
    shutil.copytree(ROOT / "scripts", repo / "scripts", ignore=shutil.ignore_patterns("__py*"))
    (repo / "studies").mkdir()
    # capped, so neither cell's split is the committed one (whose listing stays uncached)
    tiny = {"name": "tiny", "seeds": [1], "methods": [], "caps": [6]}
    (repo / "studies/tiny.yaml").write_text(
        yaml.safe_dump({**tiny, "cap_methods": ["none", "oversample"], "set": {}})
    )
    dvc = [sys.executable, "-m", "dvc"]
    sh([*dvc, "repro", "split"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "study, and the lock of the committed split"], repo, env)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)

    study = [sys.executable, "scripts/study.py", "run", "--study", "studies/tiny.yaml"]
    log = sh(study, clone, env, timeout=600)
    assert "the DVC cache lacks the committed outputs of check_params, download, split" in log
    assert "2 to run" in log
    runs = pd.read_csv(clone / "reports/tiny/runs.csv")
    assert sorted(runs["experiment"]) == ["tiny-none-6-s1", "tiny-oversample-6-s1"]
    # The ledger `run` wrote (new, so untracked here) does not block the next run; nor does
    # a change to it once it is committed.
    sh(["git", "add", "studies/results"], clone, env)
    sh(["git", "commit", "-qm", "ledger"], clone, env)
    ledger = clone / "studies/results/tiny.jsonl"
    ledger.write_text(ledger.read_text() + "\n")
    assert "2 already stored" in sh(study, clone, env)
    # A change to the pipeline's code does.
    fuse_py = clone / "pneumogan/data/fuse.py"
    fuse_py.write_text(fuse_py.read_text() + "\n# changed\n")
    out = subprocess.run(study, cwd=clone, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "M pneumogan/data/fuse.py" in out.stderr


def test_method_descriptions_come_from_the_params():
    runs = fake_runs()
    assert "up to a ratio of 1" in describe_methods(runs)
    runs.loc[runs["method"] == "gan", "gan_variant"] = "sn_hinge"
    runs.loc[runs["method"] == "gan", "target_ratio"] = 0.5
    text = describe_methods(runs)
    assert "`gan` adds spectral-norm D + hinge loss images of the normal class" in text
    assert "up to a ratio of 0.5" in text and "DCGAN" not in text


def test_ledger_round_trip_keeps_what_the_report_reads_and_is_deterministic(tmp_path):
    from pneumogan.study.store import record

    def exp(name, rev):
        return Experiment(
            name,
            rev,
            "2026-12-01T00:00:00",
            {"seed": 1},
            {"metrics/eval.json": {"auc": 0.9}, "metrics/train.json": {"best_epoch": 3}},
            {"stages/train.py": "a", "data/raw": "b.dir"},
        )

    assert read_ledger(tmp_path, "s") == []
    assert record(tmp_path, "s", [exp("s-b", "2"), exp("s-a", "1")]) == 2
    first = (tmp_path / "studies/results/s.jsonl").read_bytes()
    assert record(tmp_path, "s", [exp("s-a", "1")]) == 0  # already there: nothing added
    assert (tmp_path / "studies/results/s.jsonl").read_bytes() == first
    got = read_ledger(tmp_path, "s")
    assert [e.name for e in got] == ["s-a", "s-b"]
    assert got[0].metrics == {"metrics/eval.json": {"auc": 0.9}}  # what runs_table reads
    assert got[0].deps == {"stages/train.py": "a"}  # code hashes only
    (tmp_path / "studies/results/s.jsonl").write_text("{not json\n")
    with pytest.raises(RuntimeError, match=r"s\.jsonl:1: not a ledger entry"):
        read_ledger(tmp_path, "s")


def test_overrides_and_matching_inputs():
    base = {"seed": 42, "study": None, "fuse": {"method": "gan", "target_ratio": 1.0}}
    cell = Cell("none", 10, 3)
    got = apply_overrides(base, Study("s", (3,), (), (10,), ("none",), ()).overrides(cell))
    assert got["seed"] == 3 and got["study"] == "s" and got["fuse"]["method"] == "none"
    assert got["split"] == {"train_per_class": 10, "keep_ratio": True}
    assert base["seed"] == 42  # the base is not modified
    code = {"stages/train.py": "a", "pneumogan/fuse.py": "b"}
    exp = Experiment("s-none-10-s3", "r", "t", got, {}, {**code, "data/raw": "c.dir"})
    assert matches(exp, got, code)
    assert not matches(exp, got, {**code, "pneumogan/fuse.py": "changed"})
    assert not matches(exp, got, {**code, "pneumogan/new.py": "d"})
    assert not matches(exp, {**got, "seed": 4}, code)


def _git_pipeline(tmp_path):
    """A git repo with a one-stage dvc.yaml, params.yaml and its code, committed twice: the
    second commit changes both the code and a param. Returns the repo and both commits."""
    repo = tmp_path / "repo"
    (repo / "stages").mkdir(parents=True)
    (repo / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python stages/train.py\n    deps: [stages/train.py]\n"
    )
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env = {**env, "GIT_COMMITTER_EMAIL": "t@t", "PATH": __import__("os").environ["PATH"]}
    sh(["git", "init", "-q"], repo, env)
    revs = []
    for code, epochs in (("print(1)\n", 3), ("print(2)\n", 4)):
        (repo / "stages/train.py").write_text(code)
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["train"]["epochs"] = epochs
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        sh(["git", "add", "-A"], repo, env)
        sh(["git", "commit", "-qm", f"epochs {epochs}"], repo, env)
        revs.append(sh(["git", "rev-parse", "HEAD"], repo, env).strip())
    return repo, revs


def test_a_pinned_study_matches_its_commits_pipeline_not_the_checkouts(tmp_path):
    from pneumogan.study.store import code_hashes, pipeline_inputs

    repo, (old, new) = _git_pipeline(tmp_path)
    params, code = pipeline_inputs(repo, old[:12])
    assert params["train"]["epochs"] == 3 and pipeline_inputs(repo) != (params, code)
    assert (
        pipeline_inputs(repo, new)
        == pipeline_inputs(repo)
        == (
            yaml.safe_load((repo / "params.yaml").read_text()),
            code_hashes(repo),
        )
    )
    # an experiment that ran the old pipeline: done for the pinned study only
    study = Study("s", (1,), ("none",), (), (), ())
    cell = Cell("none", None, 1)
    ran = apply_overrides(params, study.overrides(cell))
    exp = Experiment("s-none-all-s1", "x", "t", ran, {}, code)
    from pneumogan.study.store import record

    record(repo, "s", [exp])
    assert done(repo, study, [cell], refs=False) == {}
    pinned = Study("s", (1,), ("none",), (), (), (), pipeline=old[:12])
    assert done(repo, pinned, [cell], refs=False) == {cell: exp}
    with pytest.raises(ParamsError, match=r"pipeline commit 0000000: cannot read its params\.yaml"):
        pipeline_inputs(repo, "0000000")


def test_run_refuses_a_pinned_study_where_the_pipeline_moved_on(tmp_path):
    import importlib.util

    repo, (old, _) = _git_pipeline(tmp_path)
    path = write_study(tmp_path, pipeline=old[:12])
    spec = importlib.util.spec_from_file_location("study_script", ROOT / "scripts/study.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit, match=f"pins the study to the pipeline of commit {old[:12]}"):
        script.main(["run", "--study", str(path), "--root", str(repo)])


def test_generator_arms_run_as_gan_with_their_own_params_and_are_compared(tmp_path):
    path = write_study(
        tmp_path,
        generators={"gan": {}, "gan_da": {"gan.diffaugment": ["color", "cutout"]}},
        seeds=[1, 2, 3],
        methods=["none", "oversample", "gan", "gan_da"],
        cap_methods=["none", "oversample", "gan", "gan_da"],
    )
    study = load_study(path)
    assert study.overrides(Cell("gan_da", None, 1)) == [
        "study=s",
        "seed=1",
        "fuse.method=gan",
        'gan.diffaugment=["color", "cutout"]',
        "train.epochs=3",
    ]
    params = apply_overrides({"gan": {"diffaugment": []}}, study.overrides(Cell("gan_da", 10, 1)))
    assert params["gan"]["diffaugment"] == ["color", "cutout"]
    assert params["fuse"]["method"] == "gan"
    assert load_study(write_study(tmp_path)).generators == (("gan", ()),)  # the default arm

    runs = fake_runs()
    extra = runs[runs["method"] == "gan"].assign(method="gan_da", gan_diffaugment="color+cutout")
    extra[list(METRICS)] += 0.01
    over = runs[runs["method"] == "none"].assign(method="oversample")
    runs = pd.concat([runs, extra, over], ignore_index=True)
    assert pairs(runs["method"]) == [
        ("gan", "oversample"),
        ("gan", "none"),
        ("gan_da", "oversample"),
        ("gan_da", "none"),
        ("gan_da", "gan"),
        ("oversample", "none"),
    ]
    diffs = paired_differences(runs)
    da = diffs[(diffs["a"] == "gan_da") & (diffs["b"] == "gan") & (diffs["metric"] == "auc")]
    assert da["mean"].to_numpy() == pytest.approx([0.01, 0.01])
    assert "`gan_da` adds DCGAN with DiffAugment (color, cutout) images" in describe_methods(runs)
    out = tmp_path / "r" / "s.md"
    report(study, runs, out, "cmd")
    text = out.read_text()
    assert "24 of the study's 24 experiments" in text
    assert row(text, "all", "gan_da − gan", "3")[3] == "+0.010 (3/3)"  # no spread: no interval
    assert row(text, "10", "gan_da − oversample", "3")[3].startswith("+0.030 [")
    assert row(text, "10", "gan_da", "20")  # its own synthesis-quality row
    methods_rows = [r[0] for r in table_rows(text)]
    assert methods_rows[:5] == ["method", "none", "oversample", "gan", "gan_da"]
    head = headline(runs)
    assert row(head, "gan_da − oversample", "1214", "3")[3].startswith("+0.030 [")
    assert row(head, "oversample − none", "10", "3")[3] == "+0.000 (0/3)"


@pytest.mark.parametrize("file", ["balancing", "balancing_v1", "default", "larger"])
def test_committed_report_is_what_the_committed_ledger_gives(tmp_path, file):
    """reports/<report>.md, its figures and runs table, and README's summary block are what
    `scripts/study.py report` makes from the committed ledger alone, byte for byte: a clone
    with no experiment refs regenerates them."""
    study = load_study(ROOT / f"studies/{file}.yaml")
    name = study.report_name
    ledger = read_ledger(ROOT, study.name)
    assert ledger, f"studies/results/{name}.jsonl is missing or empty"
    try:
        found = done(ROOT, study, study.cells(), refs=False)
    except ParamsError as err:  # a shallow clone: the pinned commit's files are not here
        pytest.skip(str(err))
    if not found:
        pytest.skip(
            f"none of the ledger's {len(ledger)} experiments ran with the pipeline of "
            f"studies/{file}.yaml: run the study (scripts/study.py run) and commit its report"
        )
    runs = runs_table(study, found)
    out = tmp_path / f"{name}.md"
    flag = "" if file == "balancing" else f" --study studies/{file}.yaml"
    left = [c for c in study.cells() if c not in found and study.needs_gpu(c)]
    report(study, runs, out, f"uv run python scripts/study.py report{flag}", gpu_left=left)
    committed = ROOT / "reports"
    assert out.read_text() == (committed / f"{name}.md").read_text()
    made = sorted(f.name for f in (tmp_path / name).iterdir())
    assert made == sorted(f.name for f in (committed / name).iterdir())
    for file in made:
        assert (tmp_path / name / file).read_bytes() == (committed / name / file).read_bytes(), file
    block = f"study-{name}"
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    holding = [p for p in pages if f"<!-- {block}:begin -->" in p.read_text()]
    assert holding, f"no page of README or docs holds the {block} block"
    for page in holding:
        text = page.read_text()
        assert replace_block(text, block, headline(runs)) == text, page


def test_only_finished_experiments_count_as_stored():
    """DVC lists queued, running and failed experiments with the params and dependency hashes
    they will run with; none of them is a result."""

    def entry(name, state, metrics=True):
        data = {
            "timestamp": "2026-12-02T00:00:00",
            "params": {"params.yaml": {"data": {"seed": 1}}},
            "metrics": {"metrics/eval.json": {"data": {"auc": 0.9}}} if metrics else {},
            "deps": {"stages/train.py": {"hash": "a"}},
        }
        executor = None if state is None else {"state": state}
        return {"name": name, "executor": executor, "revs": [{"rev": name, "data": data}]}

    listing = [
        {
            "experiments": [
                entry("s-done", "success"),
                entry("s-pulled", None),  # a ref fetched from a remote: no executor
                entry("s-queued", "queued", metrics=False),
                entry("s-running", "running"),  # shows the baseline's metrics meanwhile
                entry("s-failed", "failed"),
                entry("s-nometrics", None, metrics=False),
                entry("other-done", "success"),
            ]
        },
        {"experiments": None},
    ]
    got = finished(listing, "s-")
    assert [e.name for e in got] == ["s-done", "s-pulled"]
    assert got[0].params == {"seed": 1} and got[0].deps == {"stages/train.py": "a"}
    assert got[0].metrics == {"metrics/eval.json": {"auc": 0.9}}


QUEUE = """\
Task     Name                           Created    Status
966f5d2  balancing-gan-all-s46          09:00 AM   Running
de1cd42  balancing-gan_diffaug-all-s46  09:00 AM   Queued
64b6269  balancing-none-all-s46         09:00 AM   Success
9eb144b  balancing-weighted-all-s46     09:00 AM   Failed

Worker status: {active} active, 0 idle
"""


def test_queue_state_waits_for_running_tasks_of_a_live_worker():
    state = queue_state(QUEUE.format(active=1))
    assert state.waiting == {"balancing-gan-all-s46", "balancing-gan_diffaug-all-s46"}
    assert state.orphaned == set()


def test_queue_state_finds_running_tasks_that_no_worker_runs():
    """A killed run leaves its task shown as running with no worker: it is not waited for."""
    state = queue_state(QUEUE.format(active=0))
    assert state.waiting == {"balancing-gan_diffaug-all-s46"}
    assert state.orphaned == {"balancing-gan-all-s46"}


def test_a_queue_whose_worker_stopped_early_is_stalled():
    status = QUEUE.replace("Running", "Success").format(active=0)
    state = queue_state(status)
    assert state.stalled and state.queued == {"balancing-gan_diffaug-all-s46"}
    assert not queue_state(QUEUE.format(active=1)).stalled  # a worker is on it
    assert queue_state(QUEUE.format(active=0)).stalled  # only an orphan "runs": stopped too
    assert not queue_state(QUEUE.replace("Queued", "Success").format(active=0)).stalled


def test_run_queue_restarts_a_stalled_worker_and_waits_for_every_task(monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_script", ROOT / "scripts/study.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    two = QUEUE.replace("Running", "Queued")  # both s46 gan arms waiting
    statuses = iter(
        [
            two.format(active=1),  # before the first poll
            two.format(active=0),  # the worker is still starting ...
            QUEUE.format(active=1),  # ... it is not: the gan arm runs
            QUEUE.replace("Running", "Success").format(active=0),  # stopped, one queued
            QUEUE.replace("Running", "Success").format(active=0),
            QUEUE.replace("Running", "Success").format(active=0),  # third in a row: restart
            QUEUE.replace("Running", "Success").replace("Queued", "Running").format(active=1),
            QUEUE.replace("Running", "Success").replace("Queued", "Success").format(active=0),
        ]
    )
    calls = []

    def fake_dvc(root, *args):
        calls.append(args)
        return next(statuses) if args == ("queue", "status") else ""

    monkeypatch.setattr(script, "dvc", fake_dvc)
    monkeypatch.setattr(script.time, "sleep", lambda s: None)
    script.run_queue(ROOT, 2)
    starts = [c for c in calls if c[:2] == ("queue", "start")]
    assert starts == [("queue", "start", "--jobs", "2")] * 2
    out = capsys.readouterr().out
    assert "balancing-gan-all-s46: ended (1 to go)" in out
    assert "worker stopped with 1 task(s) queued; starting it again" in out
    assert "balancing-gan_diffaug-all-s46: ended (0 to go)" in out
    assert next(statuses, None) is None  # it polled until the queue was empty, and no further


def test_queue_state_of_an_empty_queue():
    state = queue_state("No experiment tasks in the queue.\n\nWorker status: 0 active, 0 idle\n")
    assert state.waiting == set() and state.orphaned == set()


def test_code_hashes_are_dvcs_own_for_files_and_wing_folders():
    """What a stored cell is matched on: the hash DVC records for each code dependency, a
    wing folder's `.dir` hash included (so a change anywhere in a wing invalidates cells)."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    locked = {d["path"]: d["md5"] for s in lock.values() for d in s["deps"] if is_code(d["path"])}
    assert any(not p.endswith(".py") for p in locked)  # folders are among them
    assert code_hashes(ROOT) == locked


def test_a_change_in_a_wing_changes_its_hash(tmp_path):
    (tmp_path / "pneumogan/data").mkdir(parents=True)
    (tmp_path / "pneumogan/data/split.py").write_text("a = 1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  split:\n    cmd: x\n    deps: [stages/split.py, pneumogan/data]\n"
    )
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages/split.py").write_text("")
    before = code_hashes(tmp_path)
    (tmp_path / "pneumogan/data/split.py").write_text("a = 2\n")
    after = code_hashes(tmp_path)
    assert before["pneumogan/data"] != after["pneumogan/data"]
    assert before["stages/split.py"] == after["stages/split.py"]
