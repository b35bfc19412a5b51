"""The PySide6 viewer: a thin layer that shows and edits state; all image maths lives in xrayviewer.core."""
