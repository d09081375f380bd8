"""Vega, Vega-Lite and vega-embed inlined in DVC's plots page, so it renders offline.

    uv run python scripts/vendor_vega.py check    # offline: the template matches its record
    uv run python scripts/vendor_vega.py verify   # re-fetch the tarballs, compare, write nothing
    uv run python scripts/vendor_vega.py write    # re-fetch the recorded versions and rewrite
    uv run python scripts/vendor_vega.py pin vega-lite@5.23.0   # move pins, then write

DVC's own page for `dvc plots show` and `dvc plots diff` loads the three libraries from a
CDN: offline its vega charts stay blank. vendor/vega/plots.html is that page with the
minified builds inlined; `.dvc/config` names it (`plots.html_template`, which DVC resolves
against `.dvc/`), so the page works from file:// with no network and can be sent as one file.

vendor/vega/vega.lock.json records, per package and in load order, the version, the npm
registry's tarball URL and its `integrity` (sha512, npm's own format), the build file taken
from it and that file's sha256, and the licence. `verify`, `write` and `pin` download the
tarballs with the standard library (no npm needed) and refuse any whose sha512 differs; `pin`
asks the registry for a new version's URL and integrity. The licence texts lie beside the
template; a tarball without one (vega's) keeps the committed copy, taken from the upstream
repository at the release's tag.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "vendor/vega"
LOCK = VENDOR / "vega.lock.json"
TEMPLATE = VENDOR / "plots.html"
REGISTRY = "https://registry.npmjs.org"
ORDER = ("vega", "vega-lite", "vega-embed")  # vega-embed needs both globals, vega-lite vega

# DVC's default page (dvc_render.html.PAGE_HTML) with a charset, as the builds hold non-ASCII
# characters, and the three builds in place of `{scripts}` (DVC's CDN <script> tags).
# `{refresh_tag}` and `{plot_divs}` are dvc-render's placeholders, filled by str.replace.
HEAD = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- DVC's plots page with %s inlined, so it needs no network.
         Written by scripts/vendor_vega.py from vendor/vega/vega.lock.json: do not edit.
         Vega, Vega-Lite and vega-embed: BSD-3-Clause, see the LICENSE files beside this one. -->
"""
TAIL = """    <script>
        // The pipeline's details files (metrics/<stage>.json) are declared as plots, which
        // keeps them in git and in DVC's run cache; they hold no table, so DVC gives each an
        // empty spec. Leave those out of the page instead of drawing blank charts.
        const drawChart = vegaEmbed;
        vegaEmbed = function (target, spec, options) {
            if (spec && Object.keys(spec).length) return drawChart(target, spec, options);
            const div = document.querySelector(target);
            if (div) div.hidden = true;
            return Promise.resolve();
        };
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""
SCRIPT = re.compile(r'<script data-package="([^"@]+)@([^"]+)">\n(.*?)\n</script>\n', re.S)
# what must not occur in an inlined build: it would end the <script> element early, or be
# taken by dvc-render for one of its placeholders
FORBIDDEN = re.compile(r"</script|<!--|\{(?:scripts|plot_divs|refresh_tag)\}", re.I)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def integrity(data: bytes) -> str:
    """npm's Subresource-Integrity string for a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # as is: no newline translation


def load_lock() -> list[dict]:
    return json.loads(LOCK.read_text())["packages"]


def save_lock(packages: list[dict]) -> None:
    note = (
        "Written by scripts/vendor_vega.py: the npm tarballs whose builds "
        "vendor/vega/plots.html inlines, in load order."
    )
    text = json.dumps({"note": note, "packages": packages}, indent=2, ensure_ascii=False)
    LOCK.write_text(text + "\n")


def render(builds: list[tuple[str, str, str]]) -> str:
    """The template for (name, version, minified build) triples, in load order."""
    for name, version, js in builds:
        if bad := FORBIDDEN.search(js):
            raise ValueError(f"{name}@{version}: its build holds {bad.group(0)!r}")
    names = ", ".join(f"{name} {version}" for name, version, _ in builds)
    scripts = "".join(
        f'    <script data-package="{name}@{version}">\n{js}\n</script>\n'
        for name, version, js in builds
    )
    return HEAD % names + scripts + TAIL


def inlined(text: str) -> list[tuple[str, str, str]]:
    return SCRIPT.findall(text)


def check() -> list[str]:
    """What is wrong with the committed template, record and licences (offline)."""
    problems = []
    packages = load_lock()
    if [p["name"] for p in packages] != list(ORDER):
        problems.append(f"{LOCK.name}: packages must be {', '.join(ORDER)}, in that order")
    page = read(TEMPLATE)
    builds = inlined(page)
    got = [(name, version) for name, version, _ in builds]
    want = [(p["name"], p["version"]) for p in packages]
    if got != want:
        problems.append(f"{TEMPLATE.name} inlines {got}, {LOCK.name} records {want}")
    for (name, _, js), p in zip(builds, packages, strict=False):
        if sha256(js.encode()) != p["sha256"]:
            problems.append(f"{TEMPLATE.name}: {name}'s build is not the recorded one")
    try:
        if render(builds) != page:
            problems.append(f"{TEMPLATE.name} is not what this script writes: run `write`")
    except ValueError as e:
        problems.append(str(e))
    for p in packages:
        licence = VENDOR / p["license_file"]
        if not licence.is_file() or sha256(licence.read_bytes()) != p["license_sha256"]:
            problems.append(f"{licence.name}: missing or not the recorded text")
    return problems


def download(url: str, registry: str) -> bytes:
    if registry != REGISTRY:
        url = url.replace(REGISTRY, registry.rstrip("/"), 1)
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.read()
    except OSError as e:  # urllib's HTTPError and URLError are OSErrors
        raise SystemExit(f"{url}: {e}") from e


def registry_entry(name: str, version: str, registry: str) -> dict:
    """The registry's tarball URL and integrity for name@version (what `pin` records)."""
    meta = json.loads(download(f"{REGISTRY}/{name}/{version}", registry))
    return {
        "name": name,
        "version": meta["version"],
        "tarball": meta["dist"]["tarball"],
        "integrity": meta["dist"]["integrity"],
        "file": f"package/build/{name}.min.js",
        "license": meta["license"],
        "license_file": f"LICENSE.{name}",
    }


def unpack(p: dict, registry: str) -> tuple[str, bytes | None, str]:
    """The package's build, licence text (None when the tarball has none) and repository."""
    data = download(p["tarball"], registry)
    if integrity(data) != p["integrity"]:
        raise SystemExit(f"{p['tarball']}: sha512 differs from the recorded integrity")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files = {m.name: m for m in tar.getmembers() if m.isfile()}

        def member(path: str) -> bytes:
            return tar.extractfile(files[path]).read()

        meta = json.loads(member("package/package.json"))
        if (meta["name"], meta["version"], meta["license"]) != (
            p["name"],
            p["version"],
            p["license"],
        ):
            raise SystemExit(f"{p['tarball']}: package.json names another package or licence")
        js = member(p["file"]).decode("utf-8")
        licence = member("package/LICENSE") if "package/LICENSE" in files else None
    repository = meta.get("repository", "")
    if isinstance(repository, dict):
        repository = repository.get("url", "")
    return js, licence, repository


def fetch(packages: list[dict], registry: str, write: bool) -> list[str]:
    """Re-fetch every tarball; with `write`, rewrite the template, licences and record."""
    problems, builds, licences = [], [], {}
    text = read(TEMPLATE) if TEMPLATE.is_file() else ""
    committed = {name: js for name, _, js in inlined(text)}
    for p in packages:
        js, licence, repository = unpack(p, registry)
        print(f"{p['name']}@{p['version']}: {p['integrity'][:23]}... matches the tarball")
        builds.append((p["name"], p["version"], js))
        licence_path = VENDOR / p["license_file"]
        if licence is None:
            if not licence_path.is_file():
                raise SystemExit(
                    f"{p['name']}@{p['version']}: the tarball has no LICENSE; save the text from "
                    f"its repository ({repository}) at the release's tag as {licence_path}"
                )
            repo = re.sub(r"^(?:git\+)?https://github\.com/|\.git$", "", repository)
            p["license_from"] = f"https://github.com/{repo}/blob/v{p['version']}/LICENSE"
            licence = licence_path.read_bytes()
        else:
            p.pop("license_from", None)
        if write:
            p["sha256"] = sha256(js.encode())
            p["license_sha256"] = sha256(licence)
            licences[licence_path] = licence
            continue
        if sha256(js.encode()) != p["sha256"] or committed.get(p["name"]) != js:
            problems.append(f"{p['name']}: the inlined build differs from the tarball's")
        if sha256(licence) != p["license_sha256"]:
            problems.append(f"{p['name']}: the committed licence differs from the tarball's")
    if write:  # only once every tarball checked out
        page = render(builds)
        for path, licence in licences.items():
            path.write_bytes(licence)
        TEMPLATE.write_bytes(page.encode())  # as is: no newline translation
        save_lock(packages)
        print(f"wrote {TEMPLATE.relative_to(ROOT)} ({TEMPLATE.stat().st_size} bytes)")
    return problems


def pin(specs: list[str], registry: str) -> list[dict]:
    packages = {p["name"]: p for p in load_lock()} if LOCK.is_file() else {}
    for spec in specs:
        name, _, version = spec.rpartition("@")
        if name not in ORDER or not version:
            raise SystemExit(f"{spec}: expected NAME@VERSION, NAME one of {', '.join(ORDER)}")
        packages[name] = registry_entry(name, version, registry)
    missing = [name for name in ORDER if name not in packages]
    if missing:
        raise SystemExit(f"pin {', '.join(missing)} too (no record yet)")
    return [packages[name] for name in ORDER]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default=REGISTRY, help="an npm registry mirror")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="offline: the template, record and licences agree")
    sub.add_parser("verify", help="re-fetch the tarballs and compare; write nothing")
    sub.add_parser("write", help="re-fetch the recorded versions and rewrite the template")
    pins = sub.add_parser("pin", help="record new versions (NAME@VERSION), then write")
    pins.add_argument("specs", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "check":
        problems = check()
    elif args.command == "verify":
        problems = fetch(load_lock(), args.registry, write=False)
    elif args.command == "write":
        problems = fetch(load_lock(), args.registry, write=True)
    else:
        problems = fetch(pin(args.specs, args.registry), args.registry, write=True)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems and args.command in ("check", "verify"):
        print(f"{TEMPLATE.relative_to(ROOT)} matches {LOCK.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
