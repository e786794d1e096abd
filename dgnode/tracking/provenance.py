"""What produced a run: the code's git commit and the versions of the libraries behind its numbers."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

__all__ = ["TRACKED_LIBRARIES", "git_commit", "library_versions", "model_requirements", "provenance_tags"]

TRACKED_LIBRARIES = {
    "torch": "torch",
    "ray": "ray",
    "mlflow": "mlflow",
    "torchdiffeq": "torchdiffeq",
    "torch_geometric": "torch-geometric",
    "dgnode": "dgnode",
}
# The libraries a logged model needs to be loaded again (pinned in its requirements).
_MODEL_LIBRARIES = ("torch", "torchdiffeq", "torch_geometric")


def git_commit(path: str | Path | None = None) -> str:
    """``HEAD`` of the git checkout holding ``path`` (default: the dgnode sources), else ``"unknown"``.

    A ``+dirty`` suffix marks uncommitted changes to tracked files: such a run is not exactly
    reproducible from the commit alone.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide a run's numbers."""
    versions = {}
    for label, distribution in TRACKED_LIBRARIES.items():
        try:
            versions[label] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[label] = "not installed"
    return versions


def provenance_tags(store_fingerprint: str | None = None, store_path: str | Path | None = None) -> dict[str, str]:
    """Tags that say what produced a run: code commit, feature store, library versions.

    Compute them on the driver and hand them to workers: a Ray job's unpacked working directory
    has no ``.git``.
    """
    commit = git_commit()
    tags = {"dgnode.git_commit": commit}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("+dirty")
    if store_fingerprint is not None:
        tags["dgnode.store_fingerprint"] = store_fingerprint
    if store_path is not None:
        tags["dgnode.store_path"] = str(store_path)
    tags.update({f"version.{name}": version for name, version in library_versions().items()})
    return tags


def model_requirements() -> list[str]:
    """``dist==version`` of the installed libraries a logged model needs."""
    versions = library_versions()
    return [f"{TRACKED_LIBRARIES[label]}=={versions[label]}" for label in _MODEL_LIBRARIES
            if versions[label] != "not installed"]
