"""Write MODEL_CARD.md from params.yaml and the committed metrics files.

uv run python scripts/model_card.py
"""

import json
from pathlib import Path

from pneumogan.classify import nets as _classifiers  # noqa: F401  (fills the registries)
from pneumogan.core.params import load_params
from pneumogan.data.medmnist import FLAG, medmnist_info
from pneumogan.generate import nets as _generators  # noqa: F401
from pneumogan.serve.model_card import render

ROOT = Path(__file__).resolve().parents[1]


def card() -> str:
    def read(name: str) -> dict:
        return json.loads((ROOT / "metrics" / name).read_text())

    return render(
        params=load_params(ROOT / "params.yaml").model_dump(mode="json"),
        split=read("split.json"),
        fuse=read("fuse.json"),
        train=read("train.json"),
        scores=read("eval.json"),
        export=read("export.json"),
        licence=medmnist_info()[FLAG]["license"],
    )


if __name__ == "__main__":
    (ROOT / "MODEL_CARD.md").write_text(card())
    print(card())
