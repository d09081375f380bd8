"""Atomic writes: an output is there whole, or the old one is left alone."""

import json
import stat

import pandas as pd
import pytest

from pneumogan.core.files import atomic_dir, atomic_path, write_bytes, write_json, write_table


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_atomic_path_writes_beside_target_and_renames(tmp_path):
    target = tmp_path / "sub" / "out.bin"  # parent directories are made
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing at the target until the block succeeds
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert list(target.parent.iterdir()) == [target]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_atomic_path_replaces_an_existing_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


def test_atomic_dir_replaces_whole_or_nothing(tmp_path):
    target = tmp_path / "outdir"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a").write_text("x")
        raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("x")
    assert (target / "a").read_text() == "x"


def test_atomic_dir_keeps_old_dir_on_failure_and_drops_stale_files_on_success(tmp_path):
    target = tmp_path / "outdir"
    target.mkdir()
    (target / "stale").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["stale"]
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("whole")
    assert sorted(p.name for p in target.iterdir()) == ["new"]  # replaced, not merged
    assert list(tmp_path.iterdir()) == [target]


def test_write_json_is_sorted_with_final_newline(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": {"d": 2, "c": 3}})
    write_json(tmp_path / "b.json", {"a": {"c": 3, "d": 2}, "b": 1})
    text = (tmp_path / "a.json").read_text()
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads(text) == {"a": {"c": 3, "d": 2}, "b": 1}


def test_write_table_rounds_to_six_significant_digits(tmp_path):
    write_table(tmp_path / "t.csv", pd.DataFrame({"epoch": [1, 2], "loss": [1 / 3, 2.0]}))
    assert (tmp_path / "t.csv").read_text().splitlines() == ["epoch,loss", "1,0.333333", "2,2"]
