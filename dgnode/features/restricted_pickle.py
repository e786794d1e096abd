"""Reading a pickle without running it.

Pickles run code while they load: a ``REDUCE`` opcode calls whatever global the file names, so
``pickle.load`` on a downloaded file is arbitrary code execution. :func:`restricted_load` uses
an unpickler whose ``find_class`` resolves only builtin containers and the numpy entry points
that rebuild arrays, dtypes and scalars, from a fixed table of objects (it imports nothing the
file names). Any other global is refused *before* it is resolved, so nothing in the file runs.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dgnode.errors import InputError

__all__ = ["RefusedGlobal", "RestrictedUnpickler", "restricted_load"]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import _codecs

    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {
        ("builtins", name): obj
        for name, obj in {
            "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
            "bytes": bytes, "bytearray": bytearray, "complex": complex,
        }.items()
    }
    # Python 3 pickles of bytes at protocol < 3 are `_codecs.encode(text, "latin1")`.
    allowed[("_codecs", "encode")] = _codecs.encode
    allowed[("collections", "OrderedDict")] = OrderedDict
    allowed[("collections", "defaultdict")] = defaultdict
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # numpy < 2 wrote `numpy.core.*`, numpy >= 2 writes `numpy._core.*`: same functions.
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    return allowed


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allowlist; carries ``module.name``."""

    def __init__(self, qualified_name: str) -> None:
        super().__init__(qualified_name)
        self.qualified_name = qualified_name


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers, numbers, strings and numpy arrays."""

    _allowed = None

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles say `__builtin__.list`, `copy_reg...`: map to Python 3 names the way
        # the default find_class does (overriding it skips that step).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def restricted_load(path: str | Path, encoding: str = "latin1") -> Any:
    """Unpickle ``path`` allowing only containers and arrays; ``latin1`` reads Python 2 pickles.

    Raises :class:`InputError` naming the file: for a refused global (with its ``module.name``),
    a truncated or corrupt file, or a missing one.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return RestrictedUnpickler(handle, encoding=encoding).load()
    except FileNotFoundError:
        raise InputError("pickle file not found", path=str(path)) from None
    except RefusedGlobal as refused:
        raise InputError(
            f"refused to load global {refused.qualified_name!r}: this pickle needs more than builtin "
            "containers, numbers, strings and numpy arrays (loading it would construct objects or call "
            "code it names), and dgnode only reads pickles made of containers and arrays",
            path=str(path),
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, MemoryError) as error:
        raise InputError(f"not a readable pickle ({type(error).__name__}: {error})", path=str(path)) from None
