"""Backbones: preprocessing resolved from each library's config and equal to the library's
own transform, CLIP's zero-shot head against open_clip's reference classifier, locally
saved weights loading back bit-exactly, and the MoCo checkpoint converter."""

from __future__ import annotations

import numpy as np
import open_clip  # the vision extra: installed by .ci/run, so these tests never skip
import pytest
import timm
import torch
import torchvision
from PIL import Image

import mr2.backbones as bb
from mr2.backbones.base import Preprocess, state_sha256
from vision_fixtures import MAE_KWARGS, tiny_clip_dir


def _photo(seed: int = 0, size=(300, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _same_encoder(a, b) -> bool:
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_clip_preprocessing_is_open_clips_own():
    net = bb.create("clip", 3, arch="ViT-B-16", zero_shot=False)
    assert (net.preprocess.size, net.preprocess.interpolation) == (224, "bicubic")
    _, _, reference = open_clip.create_model_and_transforms("ViT-B-16")
    image = _photo()
    assert torch.equal(net.preprocess.pil_transform()(image), reference(image))
    assert net.feature_dim == 512 and net.normalize


def test_mae_preprocessing_is_timms_own():
    net = bb.create("mae", 3)
    assert (net.preprocess.size, net.preprocess.resize) == (224, 248)  # crop_pct 0.9
    data_cfg = timm.data.resolve_model_data_config(net.encoder)
    reference = timm.data.create_transform(**data_cfg, is_training=False)
    image = _photo(1)
    assert torch.equal(net.preprocess.pil_transform()(image), reference(image))
    assert net.feature_dim == 768


def test_moco_preprocessing_is_torchvisions_imagenet_eval():
    net = bb.create("moco_v2", 3)
    reference = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms()  # 256 -> 224
    image = _photo(2)
    ours = net.preprocess.pil_transform()(image)
    assert ours.shape == (3, 224, 224) and net.feature_dim == 2048
    # torchvision's preset resizes tensors (antialiased) rather than PIL images: same
    # geometry, interpolation noise only
    assert (ours - reference(image)).abs().mean() < 0.02


def test_tensor_transform_matches_the_hand_computation():
    p = Preprocess(4, 4, "bilinear", (0.5, 0.25, 0.0), (0.5, 0.5, 2.0))
    grey = torch.rand(2, 1, 6, 4)  # shorter side 4 = resize: no resizing, crop rows 1..4
    out = p.tensor_transform(grey)
    crop = grey[:, :, 1:5, :]
    expected = torch.cat([(crop - 0.5) / 0.5, (crop - 0.25) / 0.5, crop / 2.0], 1)
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError, match="expected images"):
        p.tensor_transform(torch.rand(2, 2, 4, 4))
    with pytest.raises(ValueError, match="size <= resize"):
        Preprocess(8, 4, "bilinear", (0, 0, 0), (1, 1, 1))


@pytest.mark.parametrize("kind", ["vit", "rn"])
def test_clip_zero_shot_head_equals_open_clips_classifier(tmp_path, kind):
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    arch = f"local-dir:{tiny_clip_dir(tmp_path, kind)}"
    names = ["cat", "dog", "sports car"]
    torch.manual_seed(0)
    net = bb.create("clip", 3, arch=arch, class_names=names, prompts="simple").eval()
    torch.manual_seed(0)
    clip = open_clip.create_model(arch).eval()
    prompts = bb.templates("simple")
    classifier = build_zero_shot_classifier(
        clip, open_clip.get_tokenizer(arch), names, prompts, num_classes_per_batch=2
    )
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        image = torch.nn.functional.normalize(clip.encode_image(x), dim=-1)
        reference = clip.logit_scale.exp() * image @ classifier
        logits, features = net(x)
    assert torch.allclose(logits, reference, atol=1e-4)
    assert torch.allclose(features, image, atol=1e-6)
    assert net.prompts == prompts


def test_zero_shot_needs_one_name_per_class(tmp_path):
    arch = f"local-dir:{tiny_clip_dir(tmp_path)}"
    with pytest.raises(ValueError, match="needs 3 class names"):
        bb.create("clip", 3, arch=arch, class_names=["a", "b"])


def test_class_names_and_templates_are_clips_published_lists():
    # values from CLIP's published notebook (Prompt_Engineering_for_ImageNet.ipynb)
    names = bb.imagenet_class_names()
    assert len(names) == 1000
    assert names[:2] == ["tench", "goldfish"] and names[409] == "analog clock"
    assert names[-1] == "toilet paper"
    openai = bb.templates("openai_imagenet")
    assert len(openai) == 80 and openai[0] == "a bad photo of a {}."
    assert openai[-1] == "a tattoo of the {}."
    assert bb.templates("simple") == [
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ]
    assert bb.templates(["a {} photo"]) == ["a {} photo"]
    from mr2.data.vision import SOURCES

    for name in set(SOURCES) - {"imagenet"}:  # CLIP's prompts for each transfer dataset
        assert bb.templates(name)
    assert bb.templates("pets") == ["a photo of a {}, a type of pet."]
    assert len(bb.templates("cars")) == 8 and len(bb.templates("aircraft")) == 2
    with pytest.raises(ValueError, match="'\\{\\}'"):
        bb.templates(["no placeholder"])
    with pytest.raises(ValueError, match="unknown templates"):
        bb.templates("nope")


def test_clip_weights_saved_locally_load_back_bit_exactly(tmp_path):
    folder = tiny_clip_dir(tmp_path / "model")
    arch = f"local-dir:{folder}"
    torch.manual_seed(1)
    first = bb.create("clip", 2, arch=arch, zero_shot=False)
    torch.manual_seed(1)
    torch.save(open_clip.create_model(arch).state_dict(), folder / "open_clip_pytorch_model.bin")
    torch.manual_seed(2)  # a different seed: only the file can make the weights equal
    loaded = bb.create("clip", 2, arch=arch, zero_shot=False)
    assert _same_encoder(first, loaded)
    assert state_sha256(first.encoder) == state_sha256(loaded.encoder)
    torch.manual_seed(3)
    other = bb.create(
        "clip", 2, arch=f"local-dir:{tiny_clip_dir(tmp_path / 'other')}", zero_shot=False
    )
    assert state_sha256(other.encoder) != state_sha256(first.encoder)


@pytest.mark.parametrize("wrap", [False, True])
def test_mae_weights_saved_locally_load_back_bit_exactly(tmp_path, wrap):
    torch.manual_seed(0)
    first = bb.create("mae", 4, model_kwargs=MAE_KWARGS)
    state = first.encoder.state_dict()
    path = tmp_path / "mae.pth"
    torch.save({"model": state} if wrap else state, path)  # official MAE files wrap in "model"
    torch.manual_seed(1)
    loaded = bb.create("mae", 4, weights=str(path), model_kwargs=MAE_KWARGS)
    assert _same_encoder(first, loaded)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(first.eval()(x)[1], loaded.eval()(x)[1])


def _moco_checkpoint(encoder_state: dict) -> dict:
    """The official MoCo v2 layout: query and key encoders, MLP head, queue."""
    state = {f"module.encoder_q.{k}": v for k, v in encoder_state.items()}
    state.update({f"module.encoder_k.{k}": v + 1 for k, v in encoder_state.items()})
    state["module.encoder_q.fc.0.weight"] = torch.randn(2048, 2048)
    state["module.encoder_q.fc.2.weight"] = torch.randn(128, 2048)
    state["module.queue"] = torch.randn(128, 65536)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return {"epoch": 800, "arch": "resnet50", "state_dict": state, "optimizer": {}}


def test_moco_converter_on_a_synthetic_checkpoint(tmp_path):
    reference = torchvision.models.resnet50()
    reference.fc = torch.nn.Identity()
    want = reference.state_dict()
    checkpoint = _moco_checkpoint(want)
    converted = bb.convert_moco_checkpoint(checkpoint)
    assert converted.keys() == want.keys()
    assert all(torch.equal(converted[k], want[k]) for k in want)
    path = tmp_path / "moco_v2_800ep_pretrain.pth.tar"
    torch.save(checkpoint, path)
    net = bb.create("moco_v2", 5, weights=str(path))
    assert all(torch.equal(net.encoder.state_dict()[k], want[k]) for k in want)
    x = torch.randn(2, 3, 64, 64)
    reference.eval()
    assert torch.equal(net.eval()(x)[1], reference(x))
    with pytest.raises(ValueError, match="not a MoCo checkpoint"):
        bb.convert_moco_checkpoint({"state_dict": {"conv1.weight": torch.zeros(1)}})


def test_moco_torchvision_layout_loads_too(tmp_path):
    torch.manual_seed(0)
    first = bb.create("moco_v2", 3, arch="resnet18", image_size=32)
    path = tmp_path / "r18.pt"
    torch.save(first.encoder.state_dict(), path)
    torch.manual_seed(1)
    assert _same_encoder(first, bb.create("moco_v2", 3, arch="resnet18", weights=str(path)))


def test_bad_backbone_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone"):
        bb.create("dino", 3)
    with pytest.raises(ValueError, match="does not take option"):
        bb.create("mae", 3, wieghts="x")
    with pytest.raises(FileNotFoundError, match="no such file"):
        bb.create("mae", 3, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        bb.create("moco_v2", 3, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="not a file and not an open_clip tag"):
        bb.create("clip", 3, arch="ViT-B-32", weights=str(tmp_path / "missing.pt"))


@pytest.mark.parametrize(("arch", "dim"), [("ViT-B-32", 512), ("RN50", 1024)])
def test_paper_clip_architectures_build_with_their_preprocessing(arch, dim):
    net = bb.create("clip", 4, arch=arch, zero_shot=False)
    model_cfg = open_clip.get_model_config(arch)
    assert net.feature_dim == dim == model_cfg["embed_dim"]
    assert net.preprocess.size == model_cfg["vision_cfg"]["image_size"] == 224
    with torch.no_grad():
        logits, features = net.eval()(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 4) and torch.allclose(features.norm(dim=1), torch.ones(1))


def test_mae_average_pooling_gets_a_fresh_fc_norm_like_maes_fine_tuning(tmp_path):
    torch.manual_seed(0)
    pretrained = bb.create("mae", 4, model_kwargs=MAE_KWARGS)  # token pooling, final norm
    state = pretrained.encoder.state_dict()
    with torch.no_grad():
        state["norm.weight"].mul_(3.0)  # a pre-trained final norm that is not the identity
    torch.save({"model": state}, tmp_path / "mae.pth")
    torch.manual_seed(1)
    tuned = bb.create(
        "mae", 4, weights=str(tmp_path / "mae.pth"), global_pool="avg", model_kwargs=MAE_KWARGS
    )
    got = tuned.encoder.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state if not k.startswith("norm."))
    assert torch.equal(got["fc_norm.weight"], torch.ones(32))  # fresh, as MAE's code does
    assert torch.equal(got["fc_norm.bias"], torch.zeros(32))
    del state["blocks.0.attn.qkv.weight"]
    torch.save({"model": state}, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.qkv\.weight is missing"):
        bb.create(
            "mae",
            4,
            weights=str(tmp_path / "broken.pth"),
            global_pool="avg",
            model_kwargs=MAE_KWARGS,
        )
    with pytest.raises(ValueError, match="global_pool"):
        bb.create("mae", 4, global_pool="max", model_kwargs=MAE_KWARGS)
