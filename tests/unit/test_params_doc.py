"""docs/params.md is what scripts/params_doc.py renders from the params models and params.yaml."""

import importlib.util

from pneumogan.core.params import Params, Section, load_params
from tests.conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("params_doc", ROOT / "scripts" / "params_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


params_doc = load_script()
PAGE = ROOT / "docs" / "params.md"


def test_the_params_page_is_up_to_date():
    rendered = params_doc.render(load_params(ROOT / "params.yaml"))
    assert PAGE.read_text() == rendered, (
        "docs/params.md is stale: run `uv run python scripts/params_doc.py`"
    )


def test_every_knob_has_a_row_and_a_description():
    page = PAGE.read_text()
    for name, info in Params.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, Section):
            for key, knob in section.model_fields.items():
                assert f"| `{name}.{key}` |" in page
                assert knob.description, f"{name}.{key} has no description"
        else:
            assert f"| `{name}` |" in page and info.description


def test_the_names_of_arch_and_variant_come_from_the_registries():
    page = PAGE.read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `train.arch` |"))
    assert "`resnet_small`, `resnet18`, `resnet34`, `densenet121`, `resnet50`, `vgg16`" in row
    assert "- `vgg16`: VGG-16" in page and "- `ddpm`: denoising diffusion" in page


def test_check_exits_1_on_a_stale_page(tmp_path, capsys):
    stale = tmp_path / "params.md"
    stale.write_text(PAGE.read_text().replace("| `seed` | `42` |", "| `seed` | `41` |"))
    assert params_doc.main(["--check", "--out", str(stale)]) == 1
    assert (
        "params.md is stale: run `uv run python scripts/params_doc.py`" in capsys.readouterr().err
    )
    assert params_doc.main(["--check"]) == 0
    assert params_doc.main(["--out", str(stale)]) == 0
    assert stale.read_text() == PAGE.read_text()
