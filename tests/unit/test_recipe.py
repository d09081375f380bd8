"""The recipe search script: overrides, the paired report, and that it never reads test."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from pneumogan.core.params import ParamsError, TrainParams, load_params
from tests.conftest import ROOT


def load_recipe():
    spec = importlib.util.spec_from_file_location("recipe", ROOT / "scripts" / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = load_recipe()
PARAMS = load_params(ROOT / "params.yaml")


def test_overrides_reach_train_mixup_and_the_method():
    changes = {"train.ema": 0.99, "mixup": 0.0, "fuse.method": "gan"}
    p = recipe.variant_params("v", changes, PARAMS)
    assert isinstance(p.train, TrainParams) and p.train.ema == 0.99
    assert p.train.epochs == PARAMS.train.epochs and p.mixup == 0.0 and p.fuse.method == "gan"
    assert recipe.variant_params("baseline", None, PARAMS) == PARAMS
    assert PARAMS.train.ema == 0.0  # params.yaml's values are not changed in place


def test_a_bad_override_fails_as_a_bad_param_would():
    with pytest.raises(ParamsError, match=r"variant v: params\.train\.ema = 2\.0: out of range"):
        recipe.variant_params("v", {"train.ema": 2.0}, PARAMS)
    with pytest.raises(ParamsError, match=r"params\.train\.arch = 'vgg': must be one of"):
        recipe.variant_params("v", {"train.arch": "vgg"}, PARAMS)


def test_a_variant_may_not_set_params_outside_the_recipe(tmp_path):
    bad = tmp_path / "recipe.yaml"
    bad.write_text("seeds: [1]\nvariants:\n  baseline: {}\n  x: {split.train_per_class: 10}\n")
    with pytest.raises(SystemExit, match="only train"):
        recipe.load_spec(bad)
    bad.write_text("seeds: [1]\nvariants:\n  x: {}\n")
    with pytest.raises(SystemExit, match="baseline"):
        recipe.load_spec(bad)


def test_the_script_reads_no_test_split():
    source = (ROOT / "scripts" / "recipe.py").read_text()
    assert "test.npz" not in source and '"test"' not in source


def test_report_pairs_each_variant_with_the_baseline_by_seed(tmp_path):
    y = np.array([0, 0, 1, 1, 1])
    rows = []
    for name in ("baseline", "better"):
        for seed in (1, 2, 3):
            p = np.array([0.2, 0.4, 0.6, 0.7, 0.9]) + 0.01 * seed
            np.savez(tmp_path / f"{name}-s{seed}.npz", p=p, p_tta=p)
            shift = 0.01 + 0.001 * seed if name == "better" else 0.0  # mean difference 0.012
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    **{k: v + shift for k, v in recipe.scores(y, p).items()},
                    **{f"tta_{k}": v for k, v in recipe.scores(y, p).items()},
                    "best_epoch": 5,
                    "epochs_run": 8,
                    "seconds": 10.0,
                    "device": "cpu",
                    "torch": "x",
                }
            )
    spec = {"seeds": [1, 2, 3], "variants": {"baseline": {}, "better": {"train.ema": 0.9}}}
    text = recipe.render(pd.DataFrame(rows), spec, y, preds=tmp_path)
    line = next(row for row in text.splitlines() if row.startswith("| better | baseline | 3 |"))
    # better − baseline is 0.011, 0.012, 0.013 in the three seeds on every metric
    assert line.count("+0.0120 [") == len(recipe.METRICS)
    assert "+0.0120 [+0.0095, +0.0145]" in line  # t interval: 0.012 ± 4.303 · 0.001 / √3
    auc_cell = line.split("|")[4]
    assert "(3/3)" in auc_cell  # higher AUC is better: 3 wins
    loss_cell = line.split("|")[5]
    assert "(0/3)" in loss_cell  # higher log loss is worse: no wins
    assert "`train.ema=0.9`" in text and "| baseline | — | 3 |" in text
