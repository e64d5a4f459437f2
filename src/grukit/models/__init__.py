"""Models built on grukit's layers: ``CharLM`` (character-level language model,
``charlm.py``) and ``Forecaster`` (time-series forecasting, ``forecaster.py``)."""

from .forecaster import Forecaster

__all__ = ["Forecaster"]
