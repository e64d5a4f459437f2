"""Fixtures shared by every test file."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same global torch seed."""
    torch.manual_seed(0)
