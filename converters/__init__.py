"""Keras -> ONNX converters and the training recipe. They run offline too: ONNX Runtime's telemetry is off here
as in the app (see xrayviewer/__init__.py), set before any converter can import onnxruntime or tf2onnx."""

import os

os.environ["ORT_DISABLE_TELEMETRY"] = "1"
