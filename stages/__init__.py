"""The pipeline's stage scripts, one per dvc.yaml stage (`python -m stages.<name>`).

dvc.yaml runs them with the `python` on PATH. Run by an interpreter without the project's
packages (dvc called as `.venv/bin/dvc` without the environment activated), they stop here
with the fix instead of a ModuleNotFoundError from deep inside an import.
"""

import importlib.util
import sys

_NEEDED = ("numpy", "torch", "pneumogan")
_missing = [m for m in _NEEDED if importlib.util.find_spec(m) is None]
if _missing:
    sys.exit(
        f"error: {sys.executable} lacks {', '.join(_missing)}: run dvc from the project's "
        "environment (`uv run dvc repro`, or activate .venv first) so that the stages' "
        "`python` is the project's"
    )
