"""`xrayviewer --self-test`: load the shipped models, analyse the demo film, write an overlay into a temporary folder
(removed afterwards), print one JSON line.

The Windows installer's smoke test runs it; it needs no display.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from xrayviewer import __version__
from xrayviewer.core import read_image, to_display
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.overlay import OverlayStyle, composite, save_png


def self_test(provider: str = "auto") -> dict:
    from xrayviewer.demo import demo_path
    from xrayviewer.models import available

    start = time.perf_counter()
    engine = Engine(provider)
    record = read_image(demo_path())
    display = to_display(record)
    results = {}
    with tempfile.TemporaryDirectory(prefix="xrayviewer-selftest-") as out:  # removed afterwards, even on failure
        for name in available():
            model = engine.model(name)
            analysis = engine.analyze(model, display, "gradcam", record=record, force=True)  # the whole path, always
            overlay = Path(out) / f"{name}.gradcam.png"
            save_png(overlay, composite(display, analysis.cam.heat, OverlayStyle()))
            results[name] = {"probability": round(analysis.probability, 4), "label": analysis.label,
                             "refused": [str(r) for r in analysis.refused], "notes": [str(n) for n in analysis.notes],
                             "out_of_scope": analysis.out_of_scope, "provider": analysis.provider,
                             "provider_note": analysis.provider_note, "overlay_bytes": overlay.stat().st_size,
                             "cam_peak": round(analysis.cam.peak, 6)}
    ok = bool(results) and all(r["overlay_bytes"] > 0 for r in results.values())
    return {"ok": ok, "version": __version__, "demo": str(demo_path()), "models": results,
            "seconds": round(time.perf_counter() - start, 2)}


def main(provider: str = "auto") -> int:
    try:
        result = self_test(provider)
    except Exception as exc:  # noqa: BLE001 - the smoke test reports, it does not crash
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1
