"""A small synthetic store over part of the real IEMOCAP structure for study tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def study_store(tiny_synthetic_store) -> Path:
    return tiny_synthetic_store
