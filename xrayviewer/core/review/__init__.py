"""Reviewing films: the review store (decisions, notes, marks), the worklist that fills it, the report,
measurements, PNG and DICOM (Secondary Capture, Structured Report) exports. PACS networking belongs here too.

May import `xrayviewer.core.analysis`, `xrayviewer.core.reading` and `xrayviewer.core.errors`.
"""
