"""Analysing films: the model contract and its card, ONNX Runtime sessions, preprocessing, the gate and its checks
(findings, chest detector), the engine, CAM methods, overlays, metrics; display array -> model input ->
(probability, CAM) -> overlay.

May import `xrayviewer.core.reading` and `xrayviewer.core.errors`, never `xrayviewer.core.review`.
"""
