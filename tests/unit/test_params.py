"""params.yaml: every knob typed and range-checked, and each stage's slice of it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError
from torch import nn

from pneumogan.classify.nets import SmallResNet
from pneumogan.core import choices
from pneumogan.core.device import pick_device
from pneumogan.core.files import write_json
from pneumogan.core.params import (
    GAN_STAGES,
    PIPELINE_FILE,
    STAGE_PARAMS,
    OneOf,
    Params,
    ParamsError,
    StageParams,
    flatten,
    load_params,
    load_slice,
    override,
    stage_slice,
)
from pneumogan.core.registry import CLASSIFIERS, GENERATORS
from pneumogan.generate.nets import GanConfig
from stages import check_params
from tests.conftest import ROOT, tiny_params

SLICES = Path(__file__).parent / "data" / "slices"  # check_params' output before pydantic


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repo_params_load():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.data.image_size in choices.SIZES
    flat = flatten(params)
    assert flat["gan.lr"] == params.gan.lr and flat["seed"] == params.seed
    assert flatten({"seed": 1, "train": params.train})["train.epochs"] == params.train.epochs


def test_every_knob_has_a_comment():
    for line in (ROOT / "params.yaml").read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#") and not line.endswith(":"):
            assert "#" in line, f"knob without a comment: {line!r}"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["gan"].update(lrr=0.1), "unknown key(s) ['lrr']"),
        (lambda p: p["train"].pop("epochs"), "missing key(s) ['epochs']"),
        (lambda p: p["train"].update(epochs="ten"), "params.train.epochs = 'ten': expected int"),
        (lambda p: p["train"].update(epochs=True), "expected int, got bool"),
        (lambda p: p["split"].update(keep_ratio=1), "keep_ratio = 1: expected bool, got int"),
        (lambda p: p.update(mixup=-0.1), "params.mixup = -0.1: out of range, allowed [0.0, inf]"),
        (lambda p: p["gan"].update(beta1=1.5), "out of range, allowed [0.0, 1.0]"),
        (lambda p: p["fuse"].update(target_ratio=0), "allowed (0.0, 1.0]"),
        (lambda p: p["fuse"].update(method="smote"), "must be one of ['gan', 'oversample'"),
        (
            lambda p: p["data"].update(image_size=32),
            "params.data.image_size = 32: must be one of [28, 64",
        ),
        (lambda p: p["split"].update(train_per_class=0), "train_per_class = 0: out of range"),
        (lambda p: p.update(gan=[1, 2]), "params.gan: expected a mapping"),
        (lambda p: p.update(study="has space"), "params.study = 'has space': must match"),
        (lambda p: p["evaluate"].update(bootstrap_resamples=10), "allowed [100, inf]"),
        (lambda p: p["data"].update(source="s3"), "params.data.source = 's3': must be one of"),
        (lambda p: p["data"].update(classes=["NORMAL"]), "data.classes = ['NORMAL']: expected a"),
        (lambda p: p["data"].update(classes=["A", 2]), "params.data.classes[1] = 2: expected str"),
        (lambda p: p["data"].update(patient_pattern="(x"), "not a regular expression"),
        (lambda p: p["data"].update(fit="stretch"), "must be one of ['crop', 'pad']"),
        (lambda p: p["split"].update(carve_fraction=0.9), "allowed (0.0, 0.5]"),
        (lambda p: p["train"].update(input_size=8), "train.input_size = 8: out of range"),
        (
            lambda p: p["train"].update(pretrained=True),
            "resnet_small has no ImageNet weights; train.arch must be one of ['densenet121'",
        ),
        (
            lambda p: p["train"].update(arch="vgg16", freeze=True),
            "train.freeze = true trains only the head",
        ),
    ],
)
def test_bad_params_name_file_key_value_and_range(tmp_path, edit, expected):
    params = tiny_params()
    edit(params)
    path = write(tmp_path, params)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_int_accepted_for_float_and_null_for_optional(tmp_path):
    params = tiny_params()
    params["mixup"] = 1
    params["split"]["train_per_class"] = None
    params["study"] = "seed-42_a"
    loaded = load_params(write(tmp_path, params))
    assert loaded.mixup == 1.0 and isinstance(loaded.mixup, float)
    assert loaded.split.train_per_class is None
    assert loaded.study == "seed-42_a"


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_params_are_frozen():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ValidationError, match="frozen"):
        params.train.epochs = 3


def test_the_params_module_loads_no_torch():
    """The models are plain pydantic: only the registries' modules (which check_params imports
    to fill them) load torch. check_params itself loads nothing of the data or training code."""
    code = (
        "import sys, pneumogan.core.params; a = {'torch', 'pandas'} & set(sys.modules); "
        "import stages.check_params; b = {'pandas', 'mlflow', 'diffusers'} & set(sys.modules); "
        "print(sorted(a), sorted(b))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["[]", "[]"]


def test_a_rejected_value_fails_in_check_params_with_key_value_range_and_fix(tmp_path):
    """What a user sees: the file, the key, the value, what is allowed; exit status 2 and no
    slices written."""
    params = tiny_params()
    params["train"]["lr"] = -1
    path = write(tmp_path, params)
    argv = ["--params", str(path), "--out", str(tmp_path / "p")]
    out = subprocess.run(
        [sys.executable, "-m", "stages.check_params", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr
    error = f"error: {path}: params.train.lr = -1.0: out of range, allowed (0, inf]\n"
    assert out.stderr.endswith(error)
    assert not (tmp_path / "p").exists()
    params["train"].update(lr=0.1, freeze=True)
    with pytest.raises(ParamsError, match=r"trains only the head.*set train\.pretrained: true"):
        check_params.main(["--params", str(write(tmp_path, params)), "--out", str(tmp_path / "p")])
    assert not (tmp_path / "p").exists()


def test_an_unknown_arch_names_the_registered_networks(tmp_path):
    params = tiny_params()
    params["train"]["arch"] = "resnet_tiny"
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, params))
    names = list(CLASSIFIERS.names())
    assert f"params.train.arch = 'resnet_tiny': must be one of {names}" in str(err.value)
    params["train"]["arch"] = "resnet18"
    params["gan"]["variant"] = "stylegan"
    with pytest.raises(ParamsError, match=r"gan\.variant = 'stylegan': must be one of \['dcgan'"):
        load_params(write(tmp_path, params))


def test_a_registered_network_is_an_arch_at_once(tmp_path):
    """The names are read from the registry when a value is checked, not copied at import."""
    params = tiny_params()
    params["train"]["arch"] = "tiny_test_net"
    with pytest.raises(ParamsError, match="must be one of"):
        load_params(write(tmp_path, params))

    @CLASSIFIERS.register(title="a test network")
    def tiny_test_net(cfg, fetch_weights: bool = False) -> nn.Module:
        return SmallResNet(cfg)

    try:
        assert load_params(write(tmp_path, params)).train.arch == "tiny_test_net"
    finally:
        CLASSIFIERS._entries.pop("tiny_test_net")


# ---------------------------------------------------------------- choices


CHOICE_KEYS = [
    ("data", "image_size", choices.SIZES),
    ("gan", "variant", GENERATORS.names()),
    ("fuse", "method", choices.METHODS),
    ("train", "arch", CLASSIFIERS.names()),
    ("reference", "device", choices.DEVICES),
    ("gan", "device", choices.DEVICES),
    ("train", "device", choices.DEVICES),
]


def one_of(section: str, key: str) -> tuple:
    """The values the knob's declaration allows (a choices list, or a registry's names)."""
    info = Params.model_fields[section].annotation.model_fields[key]
    (allowed,) = [m for m in info.metadata if isinstance(m, OneOf)]
    return allowed.values()


@pytest.mark.parametrize(("section", "key", "allowed"), CHOICE_KEYS)
def test_each_choice_list_is_what_params_accept(tmp_path, section, key, allowed):
    assert one_of(section, key) == allowed
    for value in allowed:
        params = tiny_params()
        params[section][key] = value
        assert getattr(getattr(load_params(write(tmp_path, params)), section), key) == value
    for value in ("other", 3, None, True):
        params = tiny_params()
        params[section][key] = value
        with pytest.raises(ParamsError, match=rf"params\.{section}\.{key} = .*: must be one of"):
            load_params(write(tmp_path, params))


def test_a_float_is_not_an_image_size(tmp_path):
    params = tiny_params()
    params["data"]["image_size"] = 64.0
    with pytest.raises(ParamsError, match="must be one of"):
        load_params(write(tmp_path, params))


def test_the_backbones_are_the_registrys():
    assert one_of("train", "arch") == CLASSIFIERS.names()


def test_gan_variants_all_build():
    for variant in GENERATORS.names():
        classes = 2 if "conditional" in GENERATORS.get(variant).tags else 0
        latent = 784 if "diffusion" in GENERATORS.get(variant).tags else 8
        G, D = GENERATORS.get(variant).build(GanConfig(28, latent, 8, variant, classes=classes))
        assert G.classes == classes
        assert (D is None) == ("adversarial" not in GENERATORS.get(variant).tags)


def test_missing_named_device_is_a_params_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ParamsError, match=r"train\.device = 'cuda': not available"):
        pick_device("cuda", "train.device")
    assert pick_device("cpu", "train.device") == torch.device("cpu")
    if not torch.backends.mps.is_available():
        assert pick_device("auto") == torch.device("cpu")


# ---------------------------------------------------------------- slices


def params_with(tmp_path, **sections) -> Params:
    """tiny params with `section={key: value}` changes, or top-level `key=value`."""
    raw = tiny_params()
    for name, change in sections.items():
        if isinstance(change, dict):
            raw[name].update(change)
        else:
            raw[name] = change
    path = tmp_path / f"params-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


def slice_bytes(tmp_path, params: Params) -> dict[str, bytes]:
    """Each stage's slice as check_params writes it."""
    out = {}
    for stage in STAGE_PARAMS:
        path = tmp_path / "slices" / f"{stage}.json"
        write_json(path, stage_slice(params, stage))
        out[stage] = path.read_bytes()
    return out


def changed(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    """Stages whose slices differ in what they read (provenance aside), and in provenance."""
    own = [s for s in STAGE_PARAMS if _own(a[s]) != _own(b[s])]
    made_by = [s for s in STAGE_PARAMS if _made_by(a[s]) != _made_by(b[s])]
    return own + [f"{s} (provenance)" for s in made_by]


def _own(raw: bytes) -> dict:
    return {k: v for k, v in json.loads(raw).items() if k != "provenance"}


def _made_by(raw: bytes) -> dict:
    return json.loads(raw).get("provenance", {})


def test_every_knob_is_read_by_some_stage():
    heads = {key.partition(".")[0] for keys in STAGE_PARAMS.values() for key in keys}
    fields = set(Params.model_fields)
    assert heads <= fields
    assert fields - heads == {"study"}  # MLflow grouping only: no stage may depend on it
    assert set(GAN_STAGES) <= set(STAGE_PARAMS)


@pytest.mark.parametrize("method", ["none", "oversample", "weighted"])
def test_gan_stages_are_disabled_unless_the_method_is_gan(tmp_path, method):
    params = params_with(tmp_path, fuse={"method": method})
    for stage in GAN_STAGES:
        assert stage_slice(params, stage) == {"enabled": False}
    gan = params_with(tmp_path, fuse={"method": "gan"})
    assert stage_slice(gan, "train_gan")["gan"] == gan.gan.model_dump(mode="json")
    assert stage_slice(gan, "synthesize")["fuse"] == {"target_ratio": gan.fuse.target_ratio}
    for stage in STAGE_PARAMS:
        assert stage_slice(params, stage)["enabled"] is (stage not in GAN_STAGES)


def test_none_and_oversample_differ_only_in_the_fuse_slice(tmp_path):
    none = slice_bytes(tmp_path, params_with(tmp_path, fuse={"method": "none"}))
    over = slice_bytes(tmp_path, params_with(tmp_path, fuse={"method": "oversample"}))
    assert changed(none, over) == ["fuse", "evaluate (provenance)"]
    for stage in GAN_STAGES:
        assert none[stage] == b'{\n  "enabled": false\n}\n'


def test_a_mixup_change_alters_only_the_train_slice(tmp_path):
    a = slice_bytes(tmp_path, params_with(tmp_path, mixup=0.2))
    b = slice_bytes(tmp_path, params_with(tmp_path, mixup=0.4))
    assert changed(a, b) == ["train", "evaluate (provenance)"]


def test_a_gan_change_alters_only_the_train_gan_slice_and_none_without_gan(tmp_path):
    a = slice_bytes(tmp_path, params_with(tmp_path, gan={"lr": 1e-4}))
    b = slice_bytes(tmp_path, params_with(tmp_path, gan={"lr": 2e-4}))
    assert changed(a, b) == ["train_gan", "evaluate (provenance)"]
    off = {"method": "oversample"}
    a = slice_bytes(tmp_path, params_with(tmp_path, fuse=off, gan={"lr": 1e-4}))
    b = slice_bytes(tmp_path, params_with(tmp_path, fuse=off, gan={"lr": 2e-4}))
    assert a == b  # a GAN knob reruns nothing when no stage uses the GAN


def test_evaluate_logs_the_params_that_made_its_model(tmp_path):
    with_gan = stage_slice(params_with(tmp_path, fuse={"method": "gan"}), "evaluate")
    assert set(with_gan["provenance"]) == {"mixup", "fuse", "train", "gan"}
    without = stage_slice(params_with(tmp_path, fuse={"method": "none"}), "evaluate")
    assert set(without["provenance"]) == {"mixup", "fuse", "train"}  # no GAN made it
    path = tmp_path / "evaluate.json"
    write_json(path, with_gan)
    flat = load_slice(path, "evaluate").flat()
    assert flat["mixup"] == 0.2 and flat["fuse.method"] == "gan" and "train.lr" in flat
    assert flat["evaluate.threshold"] == 0.5 and "provenance.mixup" not in flat


def test_load_slice_round_trips(tmp_path):
    params = params_with(tmp_path, fuse={"method": "gan"})
    slice_bytes(tmp_path, params)
    d = tmp_path / "slices"
    train = load_slice(d / "train.json", "train")
    assert train.enabled and train.seed == params.seed and train.mixup == params.mixup
    assert train.train == params.train  # the typed model, as in Params
    assert type(train.train) is type(params.train) and isinstance(train.mixup, float)
    assert train.flat() == {
        "seed": params.seed,
        "mixup": params.mixup,
        **flatten({"train": params.train}),
    }
    synth = load_slice(d / "synthesize.json", "synthesize")
    assert synth.synthesize == params.synthesize
    assert synth.fuse.target_ratio == params.fuse.target_ratio
    assert load_slice(d / "download.json", "download").data.image_size == params.data.image_size
    for stage in STAGE_PARAMS:  # every slice written loads back
        assert load_slice(d / f"{stage}.json", stage).raw == stage_slice(params, stage)


def test_the_slices_of_params_yaml_keep_their_bytes(tmp_path):
    """The slices of the committed params.yaml (and of it with `fuse.method: gan`) are byte for
    byte what check_params wrote before params were pydantic models: DVC's cache of every
    stage keys on them. A deliberate change to params.yaml changes them too: then write the
    fixture again with `python -m stages.check_params --out tests/unit/data/slices/params`."""
    params = load_params(ROOT / "params.yaml")
    for name, checked in (("params", params), ("params_gan", override(params, GAN))):
        for stage in STAGE_PARAMS:
            write_json(tmp_path / f"{stage}.json", stage_slice(checked, stage))
            written = (tmp_path / f"{stage}.json").read_bytes()
            assert written == (SLICES / name / f"{stage}.json").read_bytes(), (name, stage)
        assert {p.name for p in (SLICES / name).iterdir()} == {f"{s}.json" for s in STAGE_PARAMS}


GAN = {"fuse.method": "gan"}


def test_check_params_writes_every_param_beside_the_slices_for_mlflow(tmp_path):
    params = tiny_params()
    params["study"] = "seeds"
    check_params.main(["--params", str(write(tmp_path, params)), "--out", str(tmp_path / "p")])
    every = json.loads((tmp_path / "p" / PIPELINE_FILE).read_text())
    assert every == json.loads(json.dumps(params))
    cfg = load_slice(tmp_path / "p" / "train.json", "train")
    assert cfg.pipeline() == every and cfg.pipeline()["study"] == "seeds"
    assert "study" not in (tmp_path / "p" / "train.json").read_text()  # no stage reruns for it
    (tmp_path / "alone.json").write_bytes((tmp_path / "p" / "train.json").read_bytes())
    assert load_slice(tmp_path / "alone.json", "train").pipeline() == {}


def test_overrides_are_validated_as_params_yaml_is():
    params = load_params(ROOT / "params.yaml")
    changed = override(params, {"train.ema": 0.99, "mixup": 0.0, "fuse.method": "gan"})
    assert changed.train.ema == 0.99 and changed.mixup == 0.0 and changed.fuse.method == "gan"
    assert changed.train.epochs == params.train.epochs and params.train.ema == 0.0
    with pytest.raises(ParamsError, match=r"v1: params\.train\.ema = 2\.0: out of range"):
        override(params, {"train.ema": 2.0}, "v1")
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['emma'\]"):
        override(params, {"train.emma": 0.9})
    with pytest.raises(ParamsError, match=r"overrides: trains\.ema: no such section"):
        override(params, {"trains.ema": 0.9})


def test_a_disabled_slice_loads_with_nothing_to_read(tmp_path):
    params = params_with(tmp_path, fuse={"method": "none"})
    slice_bytes(tmp_path, params)
    cfg = load_slice(tmp_path / "slices" / "train_gan.json", "train_gan")
    assert cfg.enabled is False and cfg.flat() == {}
    with pytest.raises(AttributeError, match="STAGE_PARAMS"):
        cfg.gan  # noqa: B018


def edited_slice(tmp_path, stage, edit) -> Path:
    params = params_with(tmp_path, fuse={"method": "gan"})
    raw = stage_slice(params, stage)
    edit(raw)
    path = tmp_path / f"{stage}.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    ("stage", "edit", "expected"),
    [
        ("train", lambda r: r["train"].update(epochs=0), "train.epochs = 0: out of range"),
        ("train", lambda r: r.update(mixup=-1), "mixup = -1.0: out of range"),
        ("train", lambda r: r["train"].update(arch="vgg"), "train.arch = 'vgg': must be one of"),
        ("train", lambda r: r["train"].update(extra=1), "unknown key(s) ['extra']"),
        ("train", lambda r: r.pop("seed"), "seed: missing from the slice"),
        ("synthesize", lambda r: r["fuse"].update(target_ratio=2.0), "target_ratio = 2.0"),
        ("split", lambda r: r["split"].update(keep_ratio="yes"), "expected bool"),
    ],
)
def test_a_hand_edited_slice_is_checked_again(tmp_path, stage, edit, expected):
    path = edited_slice(tmp_path, stage, edit)
    with pytest.raises(ParamsError) as err:
        load_slice(path, stage)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_missing_or_malformed_slice_says_what_to_run(tmp_path):
    with pytest.raises(ParamsError, match="run the check_params stage first") as err:
        load_slice(tmp_path / "train.json", "train")
    assert str(tmp_path / "train.json") in str(err.value)
    for text in ("{not json", "[1, 2]", '{"seed": 1}', '{"enabled": "yes"}'):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(ParamsError, match="not a params slice"):
            load_slice(tmp_path / "bad.json", "train")


def test_reading_a_param_outside_the_slice_names_stage_params(tmp_path):
    params = params_with(tmp_path)
    slice_bytes(tmp_path, params)
    cfg = load_slice(tmp_path / "slices" / "train.json", "train")
    with pytest.raises(AttributeError, match=r"stage train reads params\.gan") as err:
        cfg.gan  # noqa: B018
    assert "STAGE_PARAMS" in str(err.value)
    with pytest.raises(AttributeError):
        cfg._private  # noqa: B018
    assert isinstance(cfg, StageParams)
    assert not hasattr(cfg, "evaluate")


def test_no_param_is_named_size():
    """DVC leaves params named `size` out of its run-cache key (DVC #10296): a change to one
    would be restored from the cache instead of rerun."""

    def keys(tree, prefix=""):
        for k, v in tree.items():
            yield f"{prefix}{k}"
            if isinstance(v, dict):
                yield from keys(v, f"{prefix}{k}.")

    names = list(keys(yaml.safe_load((ROOT / "params.yaml").read_text())))
    assert "data.image_size" in names
    assert not [n for n in names if n.rsplit(".", 1)[-1] == "size"]
    declared = list(keys(load_params(ROOT / "params.yaml").model_dump()))  # the models' fields
    assert sorted(declared) == sorted(names)
