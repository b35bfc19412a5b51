"""XRay Viewer: an offline chest X-ray workstation with an AI second opinion."""

__version__ = "0.1.0"
