"""Models built on grukit's layers: ``CharLM`` (character-level language model,
``charlm.py``) and ``Forecaster`` (time-series forecasting, ``forecaster.py``)."""

from .charlm import CharLM
from .forecaster import Forecaster

__all__ = ["CharLM", "Forecaster"]
