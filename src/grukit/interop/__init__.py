"""Interoperability: ONNX export and weight layouts of other frameworks."""
