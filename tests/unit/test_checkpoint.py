"""safetensors checkpoints: reproducible bytes, no code on load, clear errors on bad files."""

import numpy as np
import pytest
import torch

from pneumogan.classify.checkpoint import Classifier, load_classifier, save_classifier
from pneumogan.classify.nets import ClassifierConfig, build
from pneumogan.classify.predictor import predict_proba
from pneumogan.core.checkpoint import load_checkpoint, save_checkpoint, split_prefix, with_prefix
from pneumogan.core.errors import DataError
from pneumogan.core.transforms import ImageTransform
from pneumogan.generate.checkpoint import load_generator, save_gan
from pneumogan.generate.nets import Discriminator, GanConfig, Generator
from pneumogan.generate.standin import skipped_checkpoint
from pneumogan.generate.synthesis import draw, draw_for_fuse, preview
from tests.conftest import make_images

TENSORS = {"b": torch.arange(6.0).view(2, 3), "a": torch.tensor([1, 2], dtype=torch.int64)}
META = {"config": {"width": 4, "arch": "x"}, "epoch": 3}


def test_two_saves_are_byte_identical(tmp_path):
    save_checkpoint(tmp_path / "a.safetensors", "thing", TENSORS, META)
    # same content, other insertion order of keys and of the description
    other = {"a": TENSORS["a"].clone(), "b": TENSORS["b"].clone()}
    save_checkpoint(tmp_path / "b.safetensors", "thing", other, {"epoch": 3, **META})
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    save_checkpoint(tmp_path / "c.safetensors", "thing", TENSORS, {**META, "epoch": 4})
    assert (tmp_path / "a.safetensors").read_bytes() != (tmp_path / "c.safetensors").read_bytes()


def test_load_round_trips_tensors_and_meta(tmp_path):
    save_checkpoint(tmp_path / "c.safetensors", "thing", TENSORS, META)
    tensors, meta = load_checkpoint(tmp_path / "c.safetensors", "thing", "train")
    assert meta == {"kind": "thing", **META}
    assert sorted(tensors) == ["a", "b"]
    for k, v in TENSORS.items():
        assert tensors[k].dtype == v.dtype and torch.equal(tensors[k], v)


def test_prefixes_split_one_file_into_networks():
    both = {
        **with_prefix({"w": torch.zeros(1)}, "generator"),
        **with_prefix({"w": torch.ones(1)}, "disc"),
    }
    assert sorted(both) == ["disc.w", "generator.w"]
    assert torch.equal(split_prefix(both, "disc")["w"], torch.ones(1))
    assert split_prefix(both, "gen") == {}  # a prefix is a whole name, not a start of one


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-40])


def _garbage(path):
    path.write_bytes(b"not a checkpoint" * 8)


def _empty(path):
    path.write_bytes(b"")


def _no_description(path):
    from safetensors.torch import save

    path.write_bytes(save({"w": torch.zeros(2)}))


def _bad_json(path):
    from safetensors.torch import save

    path.write_bytes(save({"w": torch.zeros(2)}, metadata={"pneumogan": "{not json"}))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: p.unlink(), "checkpoint not found"),
        (_truncate, "not a pneumogan checkpoint"),
        (_garbage, "not a pneumogan checkpoint"),
        (_empty, "not a pneumogan checkpoint"),
        (_no_description, "not a pneumogan checkpoint"),
        (_bad_json, "not a pneumogan checkpoint"),
    ],
)
def test_bad_files_name_the_file_and_the_stage_to_rerun(tmp_path, damage, expected):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, "thing", TENSORS, META)
    damage(path)
    with pytest.raises(DataError) as err:
        load_checkpoint(path, "thing", "train_gan")
    msg = str(err.value)
    assert msg.startswith(str(path)) and expected in msg
    assert "rerun the train_gan stage (dvc repro -f train_gan)" in msg


def test_a_description_that_is_not_an_object_is_a_data_error(tmp_path):
    from safetensors.torch import save

    path = tmp_path / "model.safetensors"
    path.write_bytes(save({"w": torch.zeros(2)}, metadata={"pneumogan": "[1, 2]"}))
    with pytest.raises(DataError, match="not a pneumogan checkpoint"):
        load_checkpoint(path, "thing", "train")


def test_wrong_kind_names_both_kinds(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, "gan", TENSORS, META)
    with pytest.raises(DataError, match="holds a 'gan', expected a 'classifier'") as err:
        load_checkpoint(path, "classifier", "reference")
    assert str(path) in str(err.value) and "dvc repro -f reference" in str(err.value)


def test_a_skipped_stand_in_is_not_loaded_as_a_network(tmp_path):
    skipped_checkpoint(tmp_path / "model.safetensors")
    with pytest.raises(DataError, match="holds a 'skipped', expected a 'classifier'"):
        load_classifier(tmp_path / "model.safetensors", producer="reference")
    with pytest.raises(DataError, match="holds a 'skipped', expected a 'gan'"):
        load_generator(tmp_path / "model.safetensors")


# ---------------------------------------------------------------- classifier


def classifier(seed=0, width=4):
    torch.manual_seed(seed)
    cfg = ClassifierConfig("resnet_small", 28, width)
    return Classifier(build(cfg).eval(), cfg, ImageTransform(size=28), {"best_epoch": 2})


def test_classifier_saved_and_loaded_predicts_identically(tmp_path):
    clf = classifier()
    save_classifier(tmp_path / "c.safetensors", clf)
    save_classifier(tmp_path / "d.safetensors", clf)
    assert (tmp_path / "c.safetensors").read_bytes() == (tmp_path / "d.safetensors").read_bytes()
    loaded = load_classifier(tmp_path / "c.safetensors")
    assert loaded.config == clf.config and loaded.transform == clf.transform
    assert loaded.info == {"best_epoch": 2} and not loaded.model.training
    images = make_images(np.array([0, 1] * 5), np.random.default_rng(0))
    p = predict_proba(clf, images, batch_size=4)
    assert p.shape == (10,) and p.dtype == np.float64 and ((p > 0) & (p < 1)).all()
    np.testing.assert_array_equal(p, predict_proba(loaded, images, batch_size=7))
    for k, v in clf.model.state_dict().items():  # batch-norm buffers included
        assert torch.equal(v, loaded.model.state_dict()[k]), k


def test_classifier_checkpoint_that_does_not_rebuild(tmp_path):
    """Weights of one width with the config of another: a DataError, not a torch traceback."""
    clf = classifier(width=4)
    meta = {"config": {**clf.config.to_dict(), "width": 8}, "transform": {"size": 28}, "info": {}}
    save_checkpoint(tmp_path / "c.safetensors", "classifier", clf.model.state_dict(), meta)
    with pytest.raises(DataError, match="does not rebuild its network") as err:
        load_classifier(tmp_path / "c.safetensors", producer="reference")
    assert "dvc repro -f reference" in str(err.value)


def test_predict_proba_of_no_images():
    assert predict_proba(classifier(), np.zeros((0, 28, 28), np.uint8), batch_size=4).shape == (0,)


# ---------------------------------------------------------------- GAN


@pytest.fixture(scope="module")
def gan_file(tmp_path_factory):
    torch.manual_seed(0)
    cfg = GanConfig(size=28, latent_dim=8, width=4, variant="sn_hinge")
    G, D = Generator(cfg), Discriminator(cfg)
    path = tmp_path_factory.mktemp("gan") / "gan.safetensors"
    save_gan(path, G, D, cfg, epoch=3, label=0)
    return path, G, D, cfg


def test_gan_round_trip(gan_file, tmp_path):
    path, G, D, cfg = gan_file
    G2, transform, meta = load_generator(path)
    assert meta["label"] == 0 and meta["epoch"] == 3 and meta["kind"] == "gan"
    assert meta["config"] == cfg.to_dict() and meta["config"]["variant"] == "sn_hinge"
    assert transform == ImageTransform(size=28) and not G2.training
    for k, v in G.state_dict().items():
        assert torch.equal(v, G2.state_dict()[k]), k
    save_gan(tmp_path / "again.safetensors", G, D, cfg, epoch=3, label=0)
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()
    # the discriminator is stored too (spectral-norm state included)
    tensors, _ = load_checkpoint(path, "gan", "train_gan")
    assert set(D.state_dict()) == {k.removeprefix("disc.") for k in tensors if k[:5] == "disc."}


def test_draw_is_deterministic(gan_file):
    G, transform, _ = load_generator(gan_file[0])

    def images(n, batch_size):
        return draw(
            G, transform, n, batch_size=batch_size, generator=torch.Generator().manual_seed(1)
        )

    imgs = images(37, 10)
    assert imgs.shape == (37, 28, 28) and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs, images(37, 10))
    assert len(np.unique(imgs.reshape(37, -1), axis=0)) == 37  # every image its own noise
    assert images(3, 64).shape == (3, 28, 28)  # fewer images than one batch
    assert images(0, 8).shape == (0, 28, 28)


class NoiseRecorder(torch.nn.Module):
    """Stands in for a generator and keeps the noise it was given."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim, self.size, self.classes, self.z = latent_dim, 2, 0, []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.z.append(z)
        return torch.zeros(z.shape[0], 1, 2, 2)


@pytest.mark.parametrize("latent_dim", [8, 100])
def test_draw_noise_does_not_depend_on_batch_size(latent_dim):
    def noise(batch_size):
        G = NoiseRecorder(latent_dim)
        gen = torch.Generator().manual_seed(1)
        draw(G, ImageTransform(size=2), 37, batch_size=batch_size, generator=gen)
        return torch.cat(G.z)

    reference = noise(37)
    assert reference.shape == (37, latent_dim)
    for batch_size in (1, 10, 16, 64):
        assert torch.equal(noise(batch_size), reference), batch_size


def test_draw_for_fuse_adds_the_first_images_of_one_stream(gan_file):
    G, transform, _ = load_generator(gan_file[0])

    def run(need, probe):
        return draw_for_fuse(
            G, transform, need, probe, batch_size=8, generator=torch.Generator().manual_seed(2)
        )

    added, drawn = run(5, 12)
    assert added.shape == (5, 28, 28) and drawn.shape == (12, 28, 28)
    np.testing.assert_array_equal(added, drawn[:5])
    added, drawn = run(20, 12)  # more needed than probed: the probe is the added images
    assert added.shape == drawn.shape == (20, 28, 28)
    assert run(0, 3)[0].shape == (0, 28, 28)


def test_preview_is_half_real_half_synthetic():
    real, synth = np.zeros((50, 2, 2), np.uint8), np.full((50, 2, 2), 255, np.uint8)
    grid = preview(real, synth, n=8)
    assert grid.shape == (8, 2, 2) and (grid[:4] == 0).all() and (grid[4:] == 255).all()
    few = preview(real[:1], synth, n=8)  # a tiny minority class: synthetic images fill the rest
    assert few.shape == (8, 2, 2) and (few[1:] == 255).all()


def test_gan_checkpoint_that_does_not_rebuild(gan_file, tmp_path):
    path = gan_file[0]
    tensors, meta = load_checkpoint(path, "gan", "train_gan")
    meta.pop("kind")
    save_checkpoint(tmp_path / "g.safetensors", "gan", tensors, {**meta, "config": {"size": 28}})
    with pytest.raises(DataError, match="does not rebuild its generator") as err:
        load_generator(tmp_path / "g.safetensors")
    assert "dvc repro -f train_gan" in str(err.value)
