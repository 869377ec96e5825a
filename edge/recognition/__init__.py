"""The recognition stage: the ONNX model, window classification, sign decisions, episodes, model threads."""
