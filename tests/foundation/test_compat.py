"""The torchvision/ImageBind import shims work on this machine without torchaudio or pytorchvideo."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_imagebind_models_import_and_tiny_model_embeds_every_modality():
    # A fresh interpreter: the shims must work from a clean import state, and we can check
    # which heavy packages got imported along the way.
    code = r"""
import sys, torch
from dgnode.compat import ensure_torchvision, import_imagebind_models, imagebind_bpe_path
ensure_torchvision()
imagebind_model = import_imagebind_models()
from imagebind.models.multimodal_preprocessors import SimpleTokenizer
torch.manual_seed(0)
model = imagebind_model.ImageBindModel(
    vision_embed_dim=32, vision_num_blocks=1, vision_num_heads=2,
    text_embed_dim=32, text_num_blocks=1, text_num_heads=2,
    audio_embed_dim=32, audio_num_blocks=1, audio_num_heads=2, out_embed_dim=16,
    depth_embed_dim=16, depth_num_blocks=1, depth_num_heads=2,
    thermal_embed_dim=16, thermal_num_blocks=1, thermal_num_heads=2,
    imu_embed_dim=16, imu_num_blocks=1, imu_num_heads=2).eval()
tokens = SimpleTokenizer(bpe_path=imagebind_bpe_path())(["excuse me", "do you have your forms?"])
assert tokens.shape == (2, 77), tokens.shape
with torch.no_grad():
    out = model({"vision": torch.randn(2, 15, 3, 2, 224, 224),
                 "audio": torch.randn(2, 3, 1, 128, 204),
                 "text": tokens})
assert {k: tuple(v.shape) for k, v in out.items()} == {"vision": (2, 16), "audio": (2, 16), "text": (2, 16)}
assert all(torch.isfinite(v).all() for v in out.values())
for banned in ("torchaudio", "pytorchvideo", "imagebind.data", "pkg_resources"):
    assert banned not in sys.modules, banned
print("OK")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_fallback_operator_raises_clear_error_when_called():
    import torch

    from dgnode.compat import ensure_torchvision, torchvision_fallback_active

    ensure_torchvision()
    if not torchvision_fallback_active():
        pytest.skip("torchvision's compiled extension loads on this machine; the fallback is inactive")
    with pytest.raises(RuntimeError, match="torchvision::nms is unavailable"):
        torch.ops.torchvision.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)


def test_other_import_errors_are_not_swallowed(monkeypatch):
    import builtins
    import sys as _sys

    from dgnode import compat

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("some unrelated failure")
        return real_import(name, *args, **kwargs)

    saved = {k: v for k, v in _sys.modules.items() if k == "torchvision" or k.startswith("torchvision.")}
    for key in saved:
        monkeypatch.delitem(_sys.modules, key)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    monkeypatch.setattr(compat.importlib, "import_module", lambda name: failing_import(name))
    with pytest.raises(RuntimeError, match="some unrelated failure"):
        compat.ensure_torchvision()
