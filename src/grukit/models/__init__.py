"""Models built on grukit's layers: ``charlm.CharLM`` (character-level language
model) and ``forecaster.Forecaster`` (time-series forecasting)."""
