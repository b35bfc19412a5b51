"""Reading films: files and DICOM (decoder plug-ins, headers, limits), studies and DICOMDIRs, windowing, the
decoded-film cache; file -> ImageRecord -> display array.

Imports nothing of the core but `xrayviewer.core.errors`: the analysis and review wings build on it, never the
other way round.
"""
