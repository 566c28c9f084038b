"""Shared fixtures. ``shared_data`` is ``../shared/data`` beside the checkout; tests that use it skip when absent."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TRACEGEN_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _matplotlib_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
