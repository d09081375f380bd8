#!/usr/bin/env bash
# The pip path of README: in a clean venv, `pip install -r requirements.txt` installs the pins
# and the project, and `pip install .` gives a working `pneumogan` command run from another
# directory (the package data included).
#
# The pins come first through `uv pip` from uv's cache: on this machine type pip would take a
# CPU torch from the disk that PyPI's torchvision cannot import beside. pip then finds every
# pin already satisfied, so what it installs itself is the project alone.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv="${TMPDIR:-/tmp}/pneumogan-pip-venv"
rm -rf "$venv"
python3 -m venv "$venv"
grep -v '^-e ' requirements.txt > "$venv/pins.txt"
uv pip install --quiet --python "$venv/bin/python" -r "$venv/pins.txt"
"$venv/bin/python" -m pip install --quiet --no-input -r requirements.txt
"$venv/bin/python" -m pip install --quiet --no-input "$root"
cd "$(mktemp -d)"
"$venv/bin/pneumogan" --help >/dev/null
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import importlib.resources as res
from pathlib import Path

import pneumogan
import pneumogan.serve.cli  # noqa: F401  the command's module and what it imports

where = Path(pneumogan.__file__).resolve()
assert "site-packages" in where.parts, f"pneumogan imported from {where}, not the install"
assert res.files("pneumogan.serve").joinpath("model_card.md.j2").is_file(), "template missing"
print(f"pip install . gave pneumogan {md.version('pneumogan')} at {where.parent}")
PY
set +e
"$venv/bin/pneumogan" predict nothing.png 2>err.txt
status=$?
set -e
# outside the project, with no model: one line naming what to do, exit 2
[ "$status" = 2 ] || { cat err.txt; echo "predict outside the project exited $status, not 2"; exit 1; }
head -c 300 err.txt; echo
rm -rf "$venv"
