"""The seeded patient-level split of the shared chest films, and its folder layout for `evaluate`."""

from __future__ import annotations

from converters import dataset, split_folder


def test_split_is_patient_level_seeded_and_complete(kermany, whole_set):
    samples = dataset.list_samples(kermany)
    assert len(samples) == (5216 if whole_set else 16)
    split = dataset.split_samples(samples)
    sides = {side: {s.patient for s in items} for side, items in split.items()}
    assert not (sides["train"] & sides["val"]) and not (sides["train"] & sides["test"])
    assert not (sides["val"] & sides["test"])
    assert sum(len(v) for v in split.values()) == len(samples)
    assert dataset.split_samples(samples) == split  # the same seed gives the same split
    assert dataset.split_samples(samples, seed=7) != split
    for items in split.values():  # both classes on every side
        assert {s.label for s in items} == {0, 1}


def test_patient_ids():
    assert dataset.patient_of("person1000_bacteria_2931.jpeg") == "person1000"
    assert dataset.patient_of("NORMAL2-IM-0427-0001.jpeg") == "NORMAL2-IM-0427"
    assert dataset.patient_of("IM-0115-0001.jpeg") == "IM-0115"


def test_split_folder_links_one_side(kermany, tmp_path):
    assert split_folder.main(["--side", "val", "--out", str(tmp_path / "val"), "--data", str(kermany)]) == 0
    normal = list((tmp_path / "val" / "NORMAL").iterdir())
    pneumonia = list((tmp_path / "val" / "PNEUMONIA").iterdir())
    assert len(normal) + len(pneumonia) == len(dataset.split_samples(dataset.list_samples(kermany))["val"])
    assert all(p.is_symlink() and p.resolve().is_file() for p in normal[:5])
