"""Tests for the myproj inference backend.

Run with: pytest tests.py
"""

import pytest
from inference import Backend


@pytest.fixture(scope="module")
def backend():
    return Backend()


def test_backend_returns_one_output_per_input(backend):
    sample = [{"feature_1": 1.0, "feature_2": 2.0}]
    outputs = backend(sample)
    assert isinstance(outputs, list)
    assert len(outputs) == len(sample)


def test_backend_io_is_valid(backend):
    sample = [{"feature_1": 1.0, "feature_2": 2.0}]
    outputs = backend.check_io(sample)
    assert outputs[0]["prediction"] == 2
