"""The ONNX Runtime engine: torch-free."""
