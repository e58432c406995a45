"""Shared fixtures and settings: hypothesis profiles, torch thread count, markers."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# CI is derandomized so a red run can be reproduced; developers get fresh examples.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    # Compiled kernels are cached on disk; tests use a private cache, never the user's.
    import tempfile

    os.environ.setdefault("DLC_CACHE_DIR", tempfile.mkdtemp(prefix="dlc-test-cache-"))
    # One thread per xdist worker: two workers on two cores must not oversubscribe.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
