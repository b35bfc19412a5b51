"""The two-model consensus (models/consensus.json): real ONNX Runtime sessions on the shipped files, real films."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from xrayviewer.models import FOLDER, available, resolve

from converters import operating_point as op
from xrayviewer.core.analysis import checks
from xrayviewer.core.analysis.consensus import Consensus
from xrayviewer.core.analysis.contract import ModelContractError
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.gate import Gate
from xrayviewer.core.analysis.preprocess import model_input
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.reading.digest import file_sha256

# flipped upside down, this pneumonia film is unlike MobileNetV2's training films (OOD score 1.5 > 1) but not
# Xception's (0.7)
ONE_MEMBER_REFUSES = ("PNEUMONIA", "person1630_bacteria_4303.jpeg")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=600, check=False)


def gray(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine("cpu")


@pytest.fixture(scope="module")
def consensus(engine) -> Consensus:
    return engine.model("consensus")


def session_logit(model, display: np.ndarray) -> float:
    """The member's calibrated logit, straight from its ONNX Runtime session on its own card's input."""
    (p,) = model.session.run(["probability"], {"image": model_input(display, model.card)})
    p = float(np.clip(p[0, 0], 1e-7, 1 - 1e-7))
    return float(np.log(p / (1 - p)))


def test_shipped_and_named(consensus):
    assert "consensus" in available() and resolve("consensus") == FOLDER / "consensus.json"
    assert [m.card.name for m in consensus.members] == ["mobilenetv2", "xception"]
    assert consensus.card.name == "consensus" and 0 < consensus.card.threshold < 1
    assert consensus.card.threshold_rule == op.RULES[op.CHOSEN][0]  # the project's operating-point rule
    assert consensus.card.data["shifted"]["n"] == 13 * consensus.card.data["validation"]["n"]
    # a stored result names the consensus by a hash of its card and both member files
    members = "".join(file_sha256(m.path) for m in consensus.members)
    assert consensus.digest == hashlib.sha256((file_sha256(consensus.path) + members).encode()).hexdigest()


def test_probability_is_the_mean_of_the_members_logits(engine, consensus, validation_films):
    films = [gray(s.path) for s in validation_films[:4]]
    inferences = engine.infer(consensus, films)
    for film, inference in zip(films, inferences):
        mean = np.mean([session_logit(m, film) for m in consensus.members])
        assert inference.probability == pytest.approx(1 / (1 + np.exp(-mean)), abs=1e-6)
    # the scoring function the heatmaps use gives the same probability from the stacked members' inputs
    stacked = np.concatenate([i.image for i in inferences])
    assert stacked.shape == (4, 224, 224, 6)
    p = consensus.run(stacked, ["probability"])["probability"][:, 0]
    assert p == pytest.approx([i.probability for i in inferences], abs=1e-6)
    # MobileNetV2's part of the input is stretched by its card, Xception's is not
    film = films[0]
    assert np.array_equal(stacked[0, ..., :3], model_input(film, consensus.members[0].card)[0])
    assert np.array_equal(stacked[0, ..., 3:], model_input(film, consensus.members[1].card)[0])
    assert not np.array_equal(stacked[0, ..., :3], stacked[0, ..., 3:])


def test_a_film_one_member_refuses_is_refused_with_its_reason(consensus, kermany):
    film = gray(next(kermany.glob(f"**/{ONE_MEMBER_REFUSES[1]}")))[::-1].copy()
    only_own_gates = Engine("cpu", gate=Gate([checks.model_ood]))
    xception = only_own_gates.analyze(only_own_gates.model("xception"), film, None)
    assert xception.refused == [] and xception.probability is not None
    mobilenet = only_own_gates.analyze(only_own_gates.model("mobilenetv2"), film, None)
    assert [r.code for r in mobilenet.refused] == ["ood_score"]
    both = only_own_gates.analyze(only_own_gates.model("consensus"), film, None)
    assert both.model == "consensus" and both.probability is None and both.label is None
    assert [str(r) for r in both.refused] == [f"mobilenetv2: {mobilenet.refused[0]}"]


def test_occlusion_is_the_drop_of_the_mean_logit(engine, consensus, validation_films):
    film = gray(validation_films[-1].path)
    (inference,) = engine.infer(consensus, [film])
    analysis = engine.analysis(consensus, inference, film, "occlusion", cells=5)
    assert analysis.model == "consensus" and analysis.refused == []
    assert analysis.cam.small.shape == (5, 5) and analysis.cam.cells == 5
    assert analysis.cam.map.shape == film.shape
    # each patch covered by each member's own fill: the consensus's drop is the mean of the members' drops
    members = [engine.cam(m, i, "occlusion", "pneumonia", film.shape, cells=5).signed
               for m, i in zip(consensus.members, inference.members)]
    assert np.abs(members[0] - members[1]).max() > 0.05  # the members disagree somewhere: the test can fail
    assert analysis.cam.signed == pytest.approx((members[0] + members[1]) / 2, abs=1e-3)


def test_gradcam_is_the_mean_of_the_members_gradcams(engine, consensus, validation_films):
    film = gray(validation_films[0].path)
    (inference,) = engine.infer(consensus, [film])
    signed = engine.cam(consensus, inference, "gradcam", "pneumonia", film.shape).signed
    members = [engine.cam(m, i, "gradcam", "pneumonia", film.shape).signed
               for m, i in zip(consensus.members, inference.members)]
    assert signed == pytest.approx((members[0] + members[1]) / 2, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("card, why", [
    ({"name": "c", "members": ["mobilenetv2"], "rule": "mean-logit", "threshold": {"value": 0.3}}, "members"),
    ({"name": "c", "members": ["mobilenetv2", "xception"], "rule": "vote", "threshold": {"value": 0.3}}, "rule"),
    ({"name": "c", "members": ["mobilenetv2", "xception"], "rule": "mean-logit", "threshold": {"value": 3}},
     "threshold.value"),
])
def test_a_bad_card_is_refused_naming_the_file_and_key(tmp_path, card, why):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(card))
    with pytest.raises(ModelContractError) as info:
        Engine("cpu").model(path)
    assert str(path) in str(info.value) and f"'{why}'" in str(info.value)


def test_a_consensus_of_a_consensus_is_refused(tmp_path):
    path = tmp_path / "nested.json"
    path.write_text(json.dumps({"name": "c", "members": ["consensus", "xception"], "rule": "mean-logit",
                                "threshold": {"value": 0.3}}))
    with pytest.raises(XRayViewerError) as info:
        Engine("cpu").model(path)
    assert str(path) in str(info.value) and "each member must be a model file" in str(info.value)


def labelled_folder(root, kermany, per_class: int):
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / cls).mkdir(parents=True)
        for path in sorted((kermany / cls).iterdir())[:per_class]:
            shutil.copy(path, root / cls / path.name)
    return root


def test_analyze_and_evaluate_run_the_consensus(tmp_path, kermany):
    films = labelled_folder(tmp_path / "set", kermany, 2)
    result = run("analyze", str(films), "--model", "consensus", "--provider", "cpu", "--method", "gradcam")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4 and all(r["model"] == "consensus" and r["error"] is None for r in rows)
    assert all(0 <= r["probability"] <= 1 and r["label"] in ("NORMAL", "PNEUMONIA") for r in rows)
    assert {r["threshold"] for r in rows} == {Engine("cpu").model("consensus").card.threshold}
    result = run("evaluate", str(films), "--model", "consensus", "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["model"] == "consensus" and figures["n"] == 4


def test_the_worklist_stores_the_consensus_by_name_and_hash(tmp_path, kermany, engine, consensus):
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.worklist import Worklist

    films = labelled_folder(tmp_path / "set", kermany, 1)
    store = ReviewStore(tmp_path / "review.sqlite")
    events = [e for e in Worklist(store, engine, ["consensus"]).run([films]) if e.status == "analysed"]
    assert len(events) == 2
    for event in events:
        (result,) = event.results
        assert result.model == "consensus" and result.model_sha256 == consensus.digest
        assert store.models_of(event.film_id) == {"consensus": consensus.digest}


def test_the_viewer_offers_and_runs_the_consensus(qtbot, kermany):
    from xrayviewer.gui.main_window import MainWindow

    window = MainWindow("cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    items = [window.panel.model.itemText(i) for i in range(window.panel.model.count())]
    assert "consensus" in items
    window.panel.method.setCurrentIndex(window.panel.method.findData("gradcam"))
    window.panel.model.setCurrentText("consensus")
    with qtbot.waitSignal(window.analysisShown, timeout=120_000):
        window.open_paths([next((kermany / "PNEUMONIA").iterdir())])
    qtbot.waitUntil(lambda: window.panes[0].analysis is not None and window.panes[0].analysis.model == "consensus",
                    timeout=120_000)
    assert window.panes[0].analysis.probability is not None


def test_validation_scores_a_consensus_from_its_members_cached(engine, consensus, validation_films, tmp_path,
                                                                monkeypatch):
    from converters.validate import CACHE_ENV, film_scores

    films = np.stack([cv2.resize(gray(s.path), (224, 224), interpolation=cv2.INTER_AREA)
                      for s in validation_films[:4]])
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    p, refused = film_scores(engine, consensus, films, gated=True)
    assert p == pytest.approx([i.probability for i in engine.infer(consensus, list(films))], abs=1e-6)
    assert refused.tolist() == [bool(engine.analysis(consensus, i, f, None).refused)
                                for f, i in zip(films, engine.infer(consensus, list(films)))]
    assert sorted(f.name.split("-")[0] for f in tmp_path.iterdir()) == ["mobilenetv2", "xception"]
    again, _ = film_scores(engine, consensus, films, gated=True)  # read back from the cache
    assert again.tolist() == p.tolist()
