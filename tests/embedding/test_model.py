"""ImageBind builds: tiny random-init, checkpoint loading (strict, mmap, sha256), and the cost model."""

from __future__ import annotations

import hashlib

import pytest
import torch

from dgnode.compat import import_imagebind_models
from dgnode.embedding.memory import activation_bytes_per_item, parameter_count, plan_batch_sizes, weight_bytes
from dgnode.embedding.model import HUGE, TINY, _LinspaceOnCpu, build_imagebind, sha256_file
from dgnode.errors import InputError


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A full tiny state dict (all six branches), like imagebind_huge.pth is for huge."""
    torch.manual_seed(7)
    model = import_imagebind_models().ImageBindModel(**TINY.model_kwargs())
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(model.state_dict(), path)
    return path


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "text": torch.randint(1, 49000, (3, 77), generator=generator),
        "audio": torch.randn(3, 3, 1, 128, 204, generator=generator),
        "vision": torch.randn(3, 15, 3, 2, 224, 224, generator=generator),
    }


def test_tiny_model_is_seeded_and_keeps_only_extracted_branches():
    first, second, other = build_imagebind("tiny", seed=0), build_imagebind("tiny", seed=0), build_imagebind("tiny", seed=1)
    assert first.dims == {"text": 32, "audio": 32, "vision": 32}
    assert first.model_name == "imagebind_tiny(random-init, seed=0)" and first.checkpoint_sha256 is None
    assert sorted(first.model.modality_trunks.keys()) == ["audio", "text", "vision"]
    assert not any(p.requires_grad for p in first.model.parameters()) and not first.model.training
    inputs = _inputs()
    for modality, tensor in inputs.items():
        vectors = first.forward(modality, tensor)
        assert vectors.shape == (3, 32) and vectors.dtype == torch.float32
        torch.testing.assert_close(vectors, second.forward(modality, tensor), rtol=0, atol=0)
        assert not torch.allclose(vectors, other.forward(modality, tensor))


def test_checkpoint_loads_strictly_memory_mapped_with_its_sha256(tiny_checkpoint):
    loaded = build_imagebind("tiny", tiny_checkpoint, modalities=["text", "audio"])
    assert loaded.checkpoint_sha256 == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert loaded.model_name == "imagebind_tiny" and loaded.dims == {"text": 32, "audio": 32}
    assert sorted(loaded.model.modality_trunks.keys()) == ["audio", "text"]
    # The same weights built directly give the same vectors: the state dict really was applied.
    torch.manual_seed(7)
    reference = import_imagebind_models().ImageBindModel(**TINY.model_kwargs()).eval()
    inputs = _inputs(1)
    with torch.inference_mode():
        expected = reference({"audio": inputs["audio"]})["audio"]
    torch.testing.assert_close(loaded.forward("audio", inputs["audio"]), expected)
    with pytest.raises(ValueError, match="not 'vision'"):
        loaded.forward("vision", inputs["vision"])


def test_bad_checkpoints_fail_naming_the_file(tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint, weights_only=True)
    del state["modality_heads.vision.2.weight"]
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with pytest.raises(InputError, match=rf"{partial}: checkpoint does not match imagebind_tiny.*modality_heads.vision.2.weight"):
        build_imagebind("tiny", partial)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=rf"{garbage}: not a loadable torch checkpoint"):
        build_imagebind("tiny", garbage)
    with pytest.raises(InputError, match="needs --checkpoint"):
        build_imagebind("huge")
    with pytest.raises(InputError, match="checkpoint file not found"):
        build_imagebind("tiny", tmp_path / "absent.pth")


def test_sha256_is_streamed(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 1000)
    assert sha256_file(path, chunk_bytes=1000) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_parameter_counts_are_exact():
    with torch.device("meta"), _LinspaceOnCpu():
        huge = import_imagebind_models().imagebind_huge()
    tiny = build_imagebind("tiny").model
    for spec, model in ((HUGE, huge), (TINY, tiny)):
        for modality in ("vision", "text", "audio"):
            counted = sum(p.numel() for name, p in model.named_parameters() if f".{modality}." in name)
            assert parameter_count(spec, modality) == counted
    assert [parameter_count(HUGE, m) for m in ("vision", "text", "audio")] == [632_829_440, 354_032_641, 86_235_648]
    assert weight_bytes(HUGE, ["vision", "text", "audio"]) == 2_146_195_458


def test_batch_plan_from_the_cost_model():
    plan = plan_batch_sizes(HUGE, ["text", "audio", "vision"], gpu_memory_gb=24)
    # vision: 15 sequences x 2 B x 12 x 257 tokens x 1280 wide (the MLP peak) + 2 copies x 2 B x 15*3*2*224*224
    assert activation_bytes_per_item(HUGE, "vision") == 15 * 2 * 12 * 257 * 1280 + 2 * 2 * 15 * 3 * 2 * 224 * 224
    assert plan.item_bytes == {"text": 1_893_584, "audio": 12_976_128, "vision": 136_488_960}
    assert plan.sizes == {"text": 10273, "audio": 1499, "vision": 142}
    assert plan_batch_sizes(HUGE, ["vision"], gpu_memory_gb=12).sizes == {"vision": 69}
    assert plan_batch_sizes(HUGE, ["vision"], gpu_memory_gb=80, max_batch=32).sizes == {"vision": 32}
    with pytest.raises(ValueError, match="does not hold the weights"):
        plan_batch_sizes(HUGE, ["vision", "text", "audio"], gpu_memory_gb=2)
