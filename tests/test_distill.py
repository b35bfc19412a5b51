"""Distillation (issue 25): the teacher's scores of the training films, the mixed targets and the recipe's record,
on the 16 chest films kept with the tests (their own seeded split) and the shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converters import dataset, teacher
from converters.train import distill_targets, make_sequence, sigmoid
from xrayviewer.core.reading.digest import file_sha256

FIXTURE_FILMS = Path(__file__).resolve().parent / "data" / "chest"  # the 16 films kept with the tests


@pytest.fixture(scope="module")
def train_side() -> list[dataset.Sample]:
    return dataset.split_samples(dataset.list_samples(FIXTURE_FILMS))["train"]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory, train_side):
    record = teacher.score("mobilenetv2", FIXTURE_FILMS, samples=train_side)
    path = tmp_path_factory.mktemp("teacher") / "teacher-mobilenetv2.json"
    path.write_text(json.dumps(record))
    return path


def test_teacher_scores_every_training_film_by_path_with_the_engines_logit(teacher_file, train_side):
    from converters.validate import film_scores
    from xrayviewer.core.analysis.engine import Engine

    record = teacher.load(teacher_file)
    assert record["model"] == "mobilenetv2" and record["members"] == [] and len(record["digest"]) == 64
    assert [f["path"] for f in record["films"]] == [s.path.relative_to(FIXTURE_FILMS).as_posix() for s in train_side]
    engine = Engine("cpu")
    films = dataset.load_gray(train_side, 224)[0]
    p = film_scores(engine, engine.model("mobilenetv2"), films)[0]
    z = teacher.targets(record, train_side, FIXTURE_FILMS)
    assert np.allclose(sigmoid(z), p, atol=1e-4)
    assert record["figures"][-1]["auc"] > 0.5 and record["figures"][-1]["mean_abs_logit"] > 0


def test_consensus_teacher_is_the_mean_of_its_members_logits(train_side):
    part = train_side[:3]
    both = teacher.score("consensus", FIXTURE_FILMS, samples=part)
    alone = [teacher.score(name, FIXTURE_FILMS, samples=part) for name in both["members"]]
    assert both["members"] == ["mobilenetv2", "xception"]
    mean = np.mean([[f["logit"] for f in a["films"]] for a in alone], axis=0)
    assert np.allclose([f["logit"] for f in both["films"]], mean, atol=1e-4)


def test_a_film_the_teacher_did_not_score_is_refused_by_name(teacher_file, train_side):
    other = dataset.split_samples(dataset.list_samples(FIXTURE_FILMS))["val"]
    with pytest.raises(ValueError, match="training films not scored"):
        teacher.targets(teacher.load(teacher_file), other, FIXTURE_FILMS)
    bad = teacher_file.with_name("bad.json")
    bad.write_text('{"films": []}')
    with pytest.raises(ValueError, match="bad.json: not a teacher file"):
        teacher.load(bad)


def test_targets_mix_label_and_softened_teacher():
    labels = np.array([0, 1, 1, 0], np.float32)
    z = np.array([-4.0, 3.0, -1.0, 2.0])
    mixed = distill_targets(labels, z, 0.25, 2.0)
    assert np.allclose(mixed, 0.75 * labels + 0.25 / (1 + np.exp(-z / 2)), atol=1e-7)
    assert np.array_equal(distill_targets(labels, z, 0.0, 2.0), labels)
    with pytest.raises(ValueError):
        distill_targets(labels, z, 1.5, 1.0)


def test_batches_carry_the_mixed_targets_and_label_weights(train_side):
    pytest.importorskip("keras", reason="the training batches need the convert extra (tensorflow)")
    films, labels = dataset.load_gray(train_side, 32)
    targets = distill_targets(labels, np.linspace(-3, 3, len(labels)), 0.5, 1.0)
    weights = np.where(labels > 0.5, 2.0, 0.5).astype(np.float32)
    x, y, w = make_sequence(films, targets, len(films), 0.09, 1, "v3", weights=weights)[0]
    order = np.random.default_rng([1, 0]).permutation(len(films))
    assert x.shape == (len(films), 32, 32, 3)
    assert np.array_equal(y[:, 0], targets[order]) and np.array_equal(w, weights[order])
    plain = make_sequence(films, labels, len(films), 0.09, 1, "v3")[0]  # without a teacher: as before
    assert len(plain) == 2 and np.array_equal(plain[0], x) and np.array_equal(plain[1][:, 0], labels[order])


def test_training_with_a_teacher_records_it_in_the_recipe(tmp_path, teacher_file, train_side):
    pytest.importorskip("keras", reason="training needs the convert extra (tensorflow)")
    from converters import train

    out = tmp_path / "run"
    assert train.main(["--data", str(FIXTURE_FILMS), "--size", "32", "--epochs", "1", "--batch", "8", "--warmup", "0.5",
                       "--no-ema", "--recipe", "v3", "--teacher", str(teacher_file), "--distill", "0.3",
                       "--distill-temperature", "2", "--out", str(out)]) == 0
    recipe = json.loads((out / "recipe.json").read_text())
    d = recipe["hyper"]["distillation"]
    assert d["teacher_file"] == teacher_file.name and d["teacher_sha256"] == file_sha256(teacher_file)
    assert d["teacher"] == "mobilenetv2" and d["alpha"] == 0.3 and d["temperature"] == 2.0
    labels = np.array([s.label for s in train_side], np.float32)
    expected = distill_targets(labels, teacher.targets(teacher.load(teacher_file), train_side, FIXTURE_FILMS),
                               0.3, 2.0)
    assert d["mean_target"] == {"normal": round(float(expected[labels == 0].mean()), 4),
                                "pneumonia": round(float(expected[labels == 1].mean()), 4)}
    assert (out / "final.keras").is_file() and recipe["epochs_run"] == 1
    columns = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert "auc" not in columns and "val_shift_auc" in columns  # Keras' AUC reads 0 on soft targets: not logged


def test_bad_teacher_input_is_one_line_naming_it(tmp_path, capsys):
    pytest.importorskip("keras", reason="training needs the convert extra (tensorflow)")
    from converters import train

    assert teacher.main(["nosuchmodel", "--out", str(tmp_path / "t.json")]) == 2
    assert "nosuchmodel: no such model" in capsys.readouterr().err and not (tmp_path / "t.json").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"films": []}')
    with pytest.raises(SystemExit) as stop:
        train.main(["--data", str(FIXTURE_FILMS), "--size", "32", "--teacher", str(bad), "--out", str(tmp_path / "r")])
    assert stop.value.code == 2 and "bad.json: not a teacher file" in capsys.readouterr().err
