"""Import shims for two packages that do not import cleanly next to a CPU build of torch.

1. **torchvision.** PyPI's torchvision 0.28.0 is a CUDA build. Next to the CPU torch its compiled
   extension fails to load, and ``import torchvision`` then dies in ``_meta_registrations`` with
   ``operator torchvision::nms does not exist``: that module registers fake kernels for ``nms`` and
   ``qnms`` unconditionally, while every other op it registers only when the extension loaded.
   :func:`ensure_torchvision` defines the schemas of those two operators through
   ``torch.library`` (with a kernel that raises a clear error if anything ever calls them) and
   imports torchvision again. It does nothing when torchvision imports by itself (a matching
   CUDA or CPU build), and it never edits installed files. dgnode uses no torchvision operator;
   ``timm`` (and so ImageBind's model code) only needs the Python package to import.

2. **ImageBind.** ``import imagebind`` runs the package ``__init__``, which imports its ``data``
   module and with it torchaudio (built against another torch), pytorchvideo (broken with
   torchvision >= 0.17) and ``pkg_resources``. :func:`import_imagebind_models` registers the
   ``imagebind`` package module from its import spec without executing its ``__init__`` and
   imports only ``imagebind.models.*``; dgnode does its own preprocessing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

__all__ = [
    "ensure_torchvision", "imagebind_bpe_path", "import_imagebind_models", "torchvision_fallback_active",
]

_MISSING_OPERATOR = "torchvision::nms does not exist"

# torch.library.Library deregisters its definitions when garbage collected: keep it alive.
_torchvision_fallback_lib: Any = None

# Schemas as torchvision's C++ extension declares them.
_TORCHVISION_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def torchvision_fallback_active() -> bool:
    """True when torchvision was made importable by the fallback schemas of this module."""
    return _torchvision_fallback_lib is not None


def ensure_torchvision() -> types.ModuleType:
    """Import torchvision, defining its missing operator schemas first when its extension cannot load.

    Returns the imported ``torchvision`` module. Any import error other than the missing-operator
    one is re-raised unchanged.
    """
    global _torchvision_fallback_lib
    if "torchvision" in sys.modules and sys.modules["torchvision"] is not None:
        return sys.modules["torchvision"]
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if _MISSING_OPERATOR not in str(error):
            raise
    # The failed import left half-initialised modules behind; drop them before retrying.
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]

    import torch

    library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _TORCHVISION_SCHEMAS.items():
        library.define(schema)
        library.impl(name, _unavailable_kernel(name), "CompositeExplicitAutograd")
    _torchvision_fallback_lib = library
    return importlib.import_module("torchvision")


def _unavailable_kernel(name: str):
    def kernel(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"torchvision::{name} is unavailable: the installed torchvision's compiled extension "
            "does not match this torch build (see dgnode/compat.py). dgnode does not use it."
        )

    return kernel


def import_imagebind_models() -> types.ModuleType:
    """Return ``imagebind.models.imagebind_model`` without running ``imagebind/__init__.py``."""
    ensure_torchvision()
    package = sys.modules.get("imagebind")
    if package is None:
        spec = importlib.util.find_spec("imagebind")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                "the 'imagebind' package is not installed: pip install imagebind-unofficial==0.1.1"
            )
        package = types.ModuleType("imagebind")
        package.__spec__ = spec
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        sys.modules["imagebind"] = package
    return importlib.import_module("imagebind.models.imagebind_model")


def imagebind_bpe_path() -> str:
    """Path of the BPE vocabulary that ships inside the imagebind package."""
    import os

    import_imagebind_models()
    root = sys.modules["imagebind"].__path__[0]
    path = os.path.join(root, "bpe", "bpe_simple_vocab_16e6.txt.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"ImageBind's BPE vocabulary is missing: expected {path}")
    return path
