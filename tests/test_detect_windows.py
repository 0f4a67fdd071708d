"""Training windows (HDF5 for ``train``), the Keras window classifier, and detector runs.

The scenes are small greyscale PNGs in ``tmp_path``: dark noise with flat squares of a known
brightness per label at known boxes (one scene has none), so every window's pixels say where it
was cut. The Keras classifier is a real two-layer model; the detector runs use a tiny window
classifier of our own protocol that scores mean brightness.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.config.detect import DetectorParams, DetectParams, DetectWindowsParams
from pipeline.detect import windows
from pipeline.detect.boxes import AnnotatedImage, Box, Detection, xyxy
from pipeline.detect.classifiers import build
from pipeline.detect.detector import (
    DetectRun,
    Scan,
    WindowDetector,
    load_run,
    run,
    save_run,
)
from pipeline.detect.geometry import iou_matrix
from pipeline.io.errors import InputError
from pipeline.io.hdf5 import Split

LABELS = ["a", "b"]
#: Grey level of each label's flat square; the background is noise in 0-40.
LEVEL = {"a": 200, "b": 120}
SIZE = (48, 56)  # height, width of a scene
#: Boxes (label, x0, y0, x1, y1) of the six scenes; scene 3 is a negative image.
SCENES = [
    [("a", 4, 4, 20, 20), ("b", 30, 20, 50, 44)],
    [("b", 8, 10, 24, 30)],
    [("a", 20, 6, 44, 30), ("a", 2, 32, 18, 46)],
    [],
    [("b", 34, 2, 54, 18)],
    [("a", 10, 12, 30, 32), ("b", 36, 28, 52, 44)],
]
TRAIN, TEST = slice(0, 4), slice(4, 6)


def _write_scene(path: Path, boxes: list[tuple[str, int, int, int, int]], seed: int,
                 channels: int = 1) -> AnnotatedImage:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 41, (*SIZE, channels), dtype=np.uint8)
    for label, x0, y0, x1, y1 in boxes:
        pixels[y0:y1, x0:x1] = LEVEL[label]
    mode = "L" if channels == 1 else "RGB"
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(path)
    return AnnotatedImage(str(path), SIZE[1], SIZE[0],
                          [Box(label, *map(float, coords)) for label, *coords in boxes])


def _scenes(folder: Path, channels: int = 1) -> list[AnnotatedImage]:
    folder.mkdir(parents=True, exist_ok=True)
    return [_write_scene(folder / f"scene_{i}.png", boxes, i, channels)
            for i, boxes in enumerate(SCENES)]


def _params(**overrides) -> DetectWindowsParams:
    values = {"window": (16, 16), "positives_per_box": 3, "jitter": 0.1, "negatives_per_image": 5,
              "negative_iou": 0.1, "negative_scales": (1.0, 2.0), "val": 0.5}
    return DetectWindowsParams(**{**values, **overrides})


def _mixed_seed(images: list[AnnotatedImage], share: float) -> int:
    """The first seed that sends some training images to val and keeps others in train."""
    for seed in range(100):
        sent = [windows.validates(image.path, seed, share) for image in images]
        if any(sent) and not all(sent):
            return seed
    raise AssertionError("no seed splits the training scenes")


def _contents(folder: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in ("train", "val", "test"):
        with h5py.File(folder / f"{name}.h5", "r") as f:
            out[name] = (f["images"][:], f["labels"][:], [p.decode() for p in f["paths"][:]],
                         {key: str(value) for key, value in f.attrs.items()})
    for name in ("mean.json", "windows.json"):
        out[name] = json.loads((folder / name).read_text())
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The six scenes, their windows written once, and what was asked."""
    root = tmp_path_factory.mktemp("windows")
    images = _scenes(root / "scenes")
    params = _params()
    seed = _mixed_seed(images[TRAIN], params.val)
    out = root / "out"
    record = windows.write(images[TRAIN], images[TEST], LABELS, params, seed, out)
    return {"images": images, "params": params, "seed": seed, "out": out, "record": record,
            "root": root}


# --------------------------------------------------------------------------- write


def test_write_makes_three_splits_with_the_background_first(written):
    out = written["out"]
    for name in ("train", "val", "test"):
        split = Split(out / f"{name}.h5")
        assert split.classes == ["background", *LABELS], name
        assert split.shape[1:] == (16, 16, 1), name
        assert len(split) > 0, f"{name} is empty with a seed that splits the scenes"
        assert set(np.unique(split.labels)) <= {0, 1, 2}
    assert written["record"]["classes"] == ["background", *LABELS]
    assert written["record"]["window"] == [16, 16]


def test_positive_counts_are_boxes_times_copies_in_train_and_once_in_test(written):
    out, params, images = written["out"], written["params"], written["images"]
    labels = np.concatenate([Split(out / "train.h5").labels, Split(out / "val.h5").labels])
    test = Split(out / "test.h5").labels
    for index, label in enumerate(LABELS, start=1):
        boxes = sum(box.label == label for image in images[TRAIN] for box in image.boxes)
        assert (labels == index).sum() == boxes * params.positives_per_box, label
        tested = sum(box.label == label for image in images[TEST] for box in image.boxes)
        assert (test == index).sum() == tested, label
    # Random background windows per image, and (where the params have them) windows beside boxes.
    beside = getattr(params, "negatives_per_box", 0)
    for name, count, scenes in (("train+val", (labels == 0).sum(), images[TRAIN]),
                                ("test", (test == 0).sum(), images[TEST])):
        most = params.negatives_per_image * len(scenes) + beside * sum(len(i.boxes) for i in scenes)
        assert 0 < count <= most, name


def test_windows_go_to_val_by_the_hash_of_their_image_path(written):
    out, seed, params = written["out"], written["seed"], written["params"]
    for name in ("train", "val"):
        sources = {path.split("#")[0] for path in Split(out / f"{name}.h5").paths()}
        for source in sources:
            assert windows.validates(source, seed, params.val) == (name == "val"), (name, source)
    train_paths = {image.path for image in written["images"][TRAIN]}
    cut_from = {p.split("#")[0] for name in ("train", "val") for p in Split(out / f"{name}.h5").paths()}
    assert cut_from == train_paths, "every training image, the negative one too, gives windows"


def test_the_first_copy_of_a_box_is_the_box_itself(written):
    """A flat square cut exactly and resized stays flat at its label's level."""
    split = Split(written["out"] / "test.h5")
    pixels, paths = split.read(), split.paths()
    for window, label, path in zip(pixels, split.labels, paths, strict=True):
        if label:
            assert path.endswith(".0"), path
            assert (window == LEVEL[LABELS[label - 1]]).all(), f"{path} is not its flat square"
    training = [Split(written["out"] / f"{name}.h5") for name in ("train", "val")]
    for split in training:
        for window, label, path in zip(split.read(), split.labels, split.paths(), strict=True):
            if label and path.endswith(".0"):
                assert (window == LEVEL[LABELS[label - 1]]).all(), path


def test_mean_json_holds_the_train_mean_per_channel(written):
    out = written["out"]
    mean = json.loads((out / "mean.json").read_text())
    pixels = Split(out / "train.h5").read()
    assert len(mean["mean"]) == 1
    assert mean["images"] == len(pixels)
    assert mean["mean"][0] == pytest.approx(pixels.mean(), abs=1e-3)
    record = json.loads((out / "windows.json").read_text())
    for name in ("train", "val", "test"):
        labels = Split(out / f"{name}.h5").labels
        assert record["windows"][name] == {c: int((labels == i).sum())
                                           for i, c in enumerate(["background", *LABELS])}


def test_rgb_windows_have_three_channels_and_a_mean_each(tmp_path):
    images = _scenes(tmp_path / "scenes", channels=3)
    params = _params(channels=3, positives_per_box=1, negatives_per_image=2)
    windows.write(images[TRAIN], images[TEST], LABELS, params, 0, tmp_path / "out")
    assert Split(tmp_path / "out" / "test.h5").shape[1:] == (16, 16, 3)
    mean = json.loads((tmp_path / "out" / "mean.json").read_text())["mean"]
    assert len(mean) == 3


def test_the_same_seed_writes_the_same_contents_and_another_does_not(written):
    images, params, seed, root = written["images"], written["params"], written["seed"], written["root"]
    again = root / "again"
    windows.write(images[TRAIN], images[TEST], LABELS, params, seed, again)
    first, second = _contents(written["out"]), _contents(again)
    assert first.keys() == second.keys()
    for key in first:
        if key.endswith(".json"):
            assert first[key] == second[key], key
            continue
        for a, b in zip(first[key], second[key], strict=True):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=key)
            else:
                assert a == b, key
    other = root / "other"
    windows.write(images[TRAIN], images[TEST], LABELS, params, seed + 7, other)
    assert not np.array_equal(Split(other / "test.h5").read(), first["test"][0]) or \
        not np.array_equal(Split(other / "train.h5").read(), first["train"][0]), \
        "another seed cuts other windows"


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("seed", range(5))
def test_background_boxes_overlap_no_object_beyond_negative_iou(written, seed):
    params = written["params"]
    low, high = params.negative_scales
    for image in written["images"]:
        found = windows.background_boxes(image, params, np.random.default_rng(seed))
        assert 0 < len(found) <= params.negatives_per_image, image.path
        boxes = np.asarray(found)
        if image.boxes:
            assert iou_matrix(boxes, xyxy(image.boxes)).max() <= params.negative_iou, image.path
        assert (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2] <= image.width + 1e-9).all() and (boxes[:, 3] <= image.height + 1e-9).all()
        sides = (boxes[:, 2] - boxes[:, 0]) / params.window[1]
        np.testing.assert_allclose(sides, (boxes[:, 3] - boxes[:, 1]) / params.window[0])
        assert (sides >= low - 1e-9).all() and (sides <= high + 1e-9).all()


def test_background_boxes_are_seeded():
    image = AnnotatedImage("x.png", 56, 48, [Box("a", 4, 4, 20, 20)])
    params = _params()
    one = windows.background_boxes(image, params, np.random.default_rng(3))
    two = windows.background_boxes(image, params, np.random.default_rng(3))
    assert one == two


def test_background_boxes_shrink_a_window_larger_than_the_image():
    image = AnnotatedImage("small.png", 12, 10)
    found = windows.background_boxes(image, _params(), np.random.default_rng(0))
    assert len(found) == 5
    for x0, y0, x1, y1 in found:
        assert min(x0, y0) >= 0 and x1 <= 12 + 1e-9 and y1 <= 10 + 1e-9


def test_background_boxes_give_up_where_objects_fill_the_image():
    image = AnnotatedImage("full.png", 32, 32, [Box("a", 0, 0, 32, 32)])
    assert windows.background_boxes(image, _params(negative_scales=(1.0, 1.5)),
                                    np.random.default_rng(0)) == []


def test_jittered_starts_with_the_box_and_stays_within_jitter():
    box, jitter = (10.0, 20.0, 30.0, 60.0), 0.1
    copies = list(windows.jittered(box, 50, jitter, np.random.default_rng(0)))
    assert len(copies) == 50
    assert copies[0] == box
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    moved = np.asarray(copies[1:])
    widths, heights = moved[:, 2] - moved[:, 0], moved[:, 3] - moved[:, 1]
    np.testing.assert_allclose(widths / w, heights / h, err_msg="the aspect ratio is kept")
    assert (np.abs(widths / w - 1) <= jitter + 1e-9).all()
    assert (np.abs((moved[:, 0] + moved[:, 2]) / 2 - cx) <= jitter * w + 1e-9).all()
    assert (np.abs((moved[:, 1] + moved[:, 3]) / 2 - cy) <= jitter * h + 1e-9).all()
    assert len({tuple(c) for c in copies}) == 50, "the copies differ"
    assert list(windows.jittered(box, 1, jitter, np.random.default_rng(0))) == [box]


def test_crop_resized_clips_to_the_image_and_resizes():
    image = np.zeros((20, 30, 1), np.uint8)
    image[5:15, 10:20] = 99
    np.testing.assert_array_equal(windows.crop_resized(image, (10, 5, 20, 15), (4, 4)),
                                  np.full((4, 4, 1), 99, np.uint8))
    out = windows.crop_resized(image, (-10, -10, 100, 100), (8, 6))
    assert out.shape == (8, 6, 1)
    assert out.max() > 0 and out.min() == 0, "the whole image, clipped, resized"


def test_read_image_gives_channels_last(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(np.full((5, 7, 3), (10, 20, 30), np.uint8), "RGB").save(path)
    assert windows.read_image(path, 1).shape == (5, 7, 1)
    rgb = windows.read_image(path, 3)
    assert rgb.shape == (5, 7, 3) and tuple(rgb[0, 0]) == (10, 20, 30)


def test_validates_is_stable_and_matches_the_share():
    paths = [f"images/img_{i:05d}.png" for i in range(4000)]
    first = [windows.validates(p, 3, 0.3) for p in paths]
    assert first == [windows.validates(p, 3, 0.3) for p in paths], "stable"
    assert np.mean(first) == pytest.approx(0.3, abs=0.03)
    other = [windows.validates(p, 4, 0.3) for p in paths]
    assert first != other, "the seed matters"
    assert not any(windows.validates(p, 3, 0.0) for p in paths[:200])
    wider = [windows.validates(p, 3, 0.6) for p in paths]
    assert all(w for f, w in zip(first, wider, strict=True) if f), "a larger share only adds images"


# --------------------------------------------------------------------------- Keras classifier


@pytest.fixture(scope="module")
def keras_model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax")])


def _keras_windows(model, batch_size: int = 8):
    from pipeline.detect.classifiers import KerasWindows
    from pipeline.train.preprocess import Preprocessor

    return KerasWindows(model, Preprocessor(scale=True), (16, 16), 1, ["background", "obj"],
                        batch_size=batch_size)


def test_keras_scores_pad_the_last_batch_and_match_predict(keras_model):
    from pipeline.train.preprocess import Preprocessor

    classifier = _keras_windows(keras_model)
    pixels = np.random.default_rng(0).integers(0, 256, (13, 16, 16, 1), dtype=np.uint8)
    scores = classifier.scores(pixels)
    assert scores.shape == (13, 2)
    expected = keras_model.predict(Preprocessor(scale=True)(pixels), verbose=0)
    # log-odds of the class probabilities: back through the logistic function they are p
    np.testing.assert_allclose(1 / (1 + np.exp(-scores)), expected, rtol=1e-4, atol=1e-6)
    assert classifier.scores(pixels[:0]).shape == (0, 2)


def test_keras_scores_with_the_mean_in_the_graph_are_the_preprocessed_ones(keras_model):
    from pipeline.detect.classifiers import KerasWindows, log_odds
    from pipeline.train.preprocess import Preprocessor

    preprocessor = Preprocessor(scale=True, mean=(30.0,))
    classifier = KerasWindows(keras_model, preprocessor, (16, 16), 1, ["background", "obj"], 8)
    pixels = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    dense = keras_model.layers[-1]
    features = preprocessor(pixels).reshape(5, -1).astype(np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
    np.testing.assert_allclose(classifier.scores(pixels), log_odds(features @ kernel + bias),
                               rtol=1e-5, atol=1e-5)


def test_a_short_batch_is_padded_to_a_power_of_two_at_most_the_batch_size():
    from pipeline.detect.classifiers import batch_shape

    sizes = [batch_shape(n, 512) for n in (1, 16, 17, 64, 65, 300, 512)]
    assert sizes == [16, 16, 32, 64, 128, 512, 512]
    assert batch_shape(5, 8) == 8


def test_log_odds_do_not_saturate_where_probabilities_do():
    from pipeline.detect.classifiers import log_odds

    logits = np.array([[0.0, 40.0, 0.0], [0.0, 45.0, 0.0], [0.0, 0.0, 0.0]])
    odds = log_odds(logits)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert probabilities.astype(np.float32)[0, 1] == probabilities.astype(np.float32)[1, 1] == 1.0
    assert odds[1, 1] > odds[0, 1] > 39  # still ranked
    np.testing.assert_allclose(odds[2], np.log(0.5), rtol=1e-12)  # p = 1/3: log(1/3 / 2/3)


def test_keras_windows_needs_a_background_and_an_object_class(keras_model):
    from pipeline.detect.classifiers import KerasWindows
    from pipeline.train.preprocess import Preprocessor

    with pytest.raises(InputError, match="background"):
        KerasWindows(keras_model, Preprocessor(), (16, 16), 1, ["obj"])


def test_load_classifier_names_a_missing_folder_or_model(tmp_path):
    from pipeline.detect.classifiers import load_classifier

    missing = tmp_path / "nowhere"
    with pytest.raises(InputError) as caught:
        load_classifier(missing)
    assert str(missing) in str(caught.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError) as caught:
        load_classifier(empty)
    assert str(empty) in str(caught.value) and "model.keras" in str(caught.value)


def test_a_saved_keras_folder_loads_and_builds_a_detector(tmp_path, keras_model):
    from pipeline.detect.classifiers import KerasWindows, load_classifier
    from pipeline.train.preprocess import Preprocessor, save_spec

    folder = tmp_path / "model"
    folder.mkdir()
    keras_model.save(folder / "model.keras")
    save_spec(folder / "preprocess.json", Preprocessor(scale=True), size=[16, 16], channels=1,
              classes=["background", "obj"])
    loaded = load_classifier(folder, batch_size=4)
    assert isinstance(loaded, KerasWindows)
    assert loaded.window == (16, 16) and loaded.channels == 1 and loaded.classes == ["background", "obj"]
    pixels = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    np.testing.assert_allclose(loaded.scores(pixels), _keras_windows(keras_model).scores(pixels),
                               rtol=1e-5, atol=1e-6)
    params = DetectParams(scale=1.5, step=8, batch_size=4, nms_iou=0.4, max_detections=3)
    detector = build(DetectorParams(model=str(folder), threshold=0.2), params, ["obj"])
    assert isinstance(detector, WindowDetector)
    assert detector.scan == Scan(0.2, 1.5, 1.0, 8, 4, 0.4, 3)
    assert len(detector.detect(np.zeros((32, 32, 1), np.uint8))) <= 3


# --------------------------------------------------------------------------- runs


class Brightness:
    """A window classifier (our protocol): the object score is the window's mean brightness."""

    def __init__(self) -> None:
        self.window = (8, 8)
        self.channels = 1
        self.classes = ["background", "bright"]

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        score = pixels.reshape(len(pixels), -1).mean(axis=1) / 255.0
        return np.column_stack([1.0 - score, score])


def test_run_skips_unreadable_files_and_keeps_the_good_images(tmp_path):
    good = []
    for i in range(2):
        pixels = np.zeros((24, 24), np.uint8)
        pixels[8:16, 8:16] = 255
        path = tmp_path / f"good_{i}.png"
        Image.fromarray(pixels, "L").save(path)
        good.append(path)
    garbage = tmp_path / "x.png"
    garbage.write_bytes(b"\x00\x01 this is not a png \xff" * 4)
    big = tmp_path / "big.png"
    Image.new("L", (64, 64)).save(big)
    detector = WindowDetector(Brightness(), Scan(threshold=0.9, scale=2.0, step=4))
    result = run(detector, [good[0], garbage, big, good[1]], max_pixels=40 * 40)
    assert result.paths == [str(good[0]), str(good[1])]
    assert len(result.detections) == len(result.seconds) == 2
    skipped = dict(result.skipped)
    assert set(skipped) == {str(garbage), str(big)}
    assert skipped[str(garbage)].startswith("unreadable"), skipped
    assert "too-many-pixels" in skipped[str(big)]
    for found in result.detections:
        assert found and found[0].xyxy == (8.0, 8.0, 16.0, 16.0)


def test_save_run_and_load_run_round_trip(tmp_path):
    result = DetectRun(
        paths=["a.png", "b.png", "c.png"],
        detections=[[Detection("cat", 0.75, 1.0, 2.0, 11.5, 12.25),
                     Detection("dog", -0.5, 0.0, 0.0, 4.0, 4.0)], [],
                    [Detection("cat", 0.125, 3.0, 3.0, 9.0, 9.0)]],
        skipped=[("x.png", "unreadable: cannot identify image file")],
        seconds=[0.25, 0.125, 0.5],
    )
    target = tmp_path / "run.json"
    save_run(result, target, detector="cnn", threshold=0.3)
    loaded, meta = load_run(target)
    assert loaded.paths == result.paths
    assert loaded.detections == result.detections
    assert loaded.skipped == result.skipped
    assert loaded.seconds == pytest.approx(result.seconds)
    assert meta["detector"] == "cnn" and meta["threshold"] == 0.3
    assert meta["seconds_per_image"] == pytest.approx(0.25), "the median"
    empty = tmp_path / "empty.json"
    save_run(DetectRun([], [], [], []), empty)
    loaded, meta = load_run(empty)
    assert loaded.paths == [] and meta["seconds_per_image"] is None


@pytest.mark.parametrize("seed", range(4))
def test_near_boxes_lie_partly_over_their_object_and_within_negative_iou(seed):
    image = AnnotatedImage("x.png", 80, 60, [Box("a", 10, 10, 30, 30), Box("b", 45, 20, 65, 40)])
    params = DetectWindowsParams(window=(16, 16), negatives_per_box=3, negative_iou=0.3)
    found = windows.near_boxes(image, params, np.random.default_rng(seed))
    assert 4 <= len(found) <= 6
    overlaps = iou_matrix(found, xyxy(image.boxes))
    assert (overlaps <= 0.3).all() and (overlaps.max(axis=1) > 0).all()
    boxes = np.asarray(found)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 80).all() and (boxes[:, 3] <= 60).all()
    assert windows.near_boxes(image, params.model_copy(update={"negatives_per_box": 0}),
                              np.random.default_rng(seed)) == []


@pytest.mark.parametrize("seed", range(3))
def test_zoom_boxes_sit_on_their_object_larger_and_smaller(seed):
    image = AnnotatedImage("x.png", 100, 80, [Box("a", 30, 30, 50, 50)])
    params = DetectWindowsParams(window=(16, 16), zoom_negatives=4, zoom_scales=(1.3, 1.8),
                                 jitter=0.05)
    found = windows.zoom_boxes(image, params, np.random.default_rng(seed))
    assert len(found) == 4
    sides = [(x1 - x0) / 20 for x0, _, x1, _ in found]
    assert all(1.3 <= s <= 1.8 for s in sides[0::2]) and all(1 / 1.8 <= s <= 1 / 1.3 for s in sides[1::2])
    centres = np.asarray([((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in found])
    assert np.abs(centres - 40).max() <= 1.0, "centred on the box, shifted by up to jitter"
    corner = AnnotatedImage("y.png", 24, 24, [Box("a", 0, 0, 20, 20)])
    inside = windows.zoom_boxes(corner, params, np.random.default_rng(seed))
    assert len(inside) == 2, "the larger ones do not fit in the image"
    assert len(windows.zoom_boxes(corner, params, np.random.default_rng(seed), outside=True)) == 4


@pytest.mark.parametrize("scales", [(1.0, 1.5), (1.6, 1.3)])
def test_zoom_scales_must_be_above_one_and_in_order(scales):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="zoom_scales"):
        DetectWindowsParams(zoom_scales=scales)


def test_filled_puts_the_image_on_a_canvas_of_the_mirrored_filler():
    image = np.full((4, 6, 1), 200, np.uint8)
    filler = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    canvas, box = windows.filled(image, (-2.0, -1.0, 7.0, 6.0), filler)
    assert canvas.shape == (7, 9, 1) and box == (0.0, 0.0, 9.0, 7.0)
    np.testing.assert_array_equal(canvas[1:5, 2:8], image)
    expected = np.pad(filler, ((0, 4), (0, 5), (0, 0)), mode="symmetric")
    outside = np.ones((7, 9), bool)
    outside[1:5, 2:8] = False
    np.testing.assert_array_equal(canvas[outside], expected[outside])


def test_fill_outside_cuts_windows_past_the_border_from_negative_images(tmp_path):
    images = _scenes(tmp_path / "scenes")[TRAIN]  # scene 3 is a negative image
    params = _params(val=0.0, negatives_per_image=1, negatives_per_box=2, zoom_negatives=2)
    inside = windows.cut(images, LABELS, params, seed=0, training=True)["train"]
    filled = windows.cut(images, LABELS, params.model_copy(update={"fill_outside": True}),
                         seed=0, training=True)["train"]
    near = [n for n in filled.names if "#near" in n]
    assert len(near) > len([n for n in inside.names if "#near" in n])
    assert len(near) == sum(2 * 2 for image in images for _ in image.boxes)
