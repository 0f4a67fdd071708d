"""The detection geometry: pyramids, sliding windows, IoU, NMS, and the sliding-window detector.

Everything runs on small numpy images. The detector is slid with a tiny window classifier of
our own protocol (:class:`FrameScorer`) that scores how well a window frames a bright outline,
so the best window is the one that sees the whole outline at the pyramid level where it is
exactly one window wide; its box must map back to the outline's pixels in the original image.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detect.detector import Scan, WindowDetector, scan_windows
from pipeline.detect.geometry import (
    cut_windows,
    iou_matrix,
    nms,
    nms_per_class,
    pyramid,
    resize,
    vote,
    window_origins,
)

# --------------------------------------------------------------------------- pyramid


def test_pyramid_levels_and_factors_of_a_known_image():
    image = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    levels = list(pyramid(image, 1.5, (32, 32)))
    assert [level.shape for _, level in levels] == [(100, 120), (67, 80), (44, 53)], \
        "100x120 by 1.5 must give 100x120, 67x80, 44x53 and stop before a side drops under 32"
    assert [factor for factor, _ in levels] == pytest.approx([1.0, 1.5, 2.25])
    assert levels[0][1] is image, "the first level at upscale 1 is the image itself"


def test_pyramid_keeps_channels_and_each_level_is_resized_from_the_original():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 48, 1), dtype=np.uint8)
    levels = list(pyramid(image, 2.0, (8, 8)))
    assert [level.shape for _, level in levels] == [(40, 48, 1), (20, 24, 1), (10, 12, 1)]
    np.testing.assert_array_equal(levels[2][1], resize(image, 0.25))


def test_pyramid_upscale_starts_bigger():
    image = np.zeros((30, 40, 3), np.uint8)
    levels = list(pyramid(image, 2.0, (10, 10), upscale=2.0))
    assert [level.shape for _, level in levels] == [(60, 80, 3), (30, 40, 3), (15, 20, 3)]
    assert [factor for factor, _ in levels] == pytest.approx([0.5, 1.0, 2.0])


def test_pyramid_of_an_image_smaller_than_the_window_is_empty():
    assert list(pyramid(np.zeros((10, 40), np.uint8), 1.25, (16, 16))) == []


@pytest.mark.parametrize("scale", [1.0, 0.8, -2.0])
def test_pyramid_scale_of_one_or_less_raises(scale):
    with pytest.raises(ValueError, match="scale"):
        next(pyramid(np.zeros((20, 20), np.uint8), scale, (4, 4)))


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(("image_hw", "window_hw", "step"),
                         [((20, 30), (8, 8), 4), ((21, 17), (5, 7), 3), ((8, 8), (8, 8), 2),
                          ((16, 9), (4, 4), 1)])
def test_window_origins_count_and_fit(image_hw, window_hw, step):
    origins = window_origins(image_hw, window_hw, step)
    expected = ((image_hw[0] - window_hw[0]) // step + 1) * ((image_hw[1] - window_hw[1]) // step + 1)
    assert origins.shape == (expected, 2)
    assert (origins >= 0).all()
    assert (origins[:, 0] + window_hw[0] <= image_hw[0]).all()
    assert (origins[:, 1] + window_hw[1] <= image_hw[1]).all()
    assert (origins % step == 0).all()
    assert len({tuple(o) for o in origins}) == expected, "no window is listed twice"
    order = np.lexsort((origins[:, 1], origins[:, 0]))
    np.testing.assert_array_equal(order, np.arange(expected), "row by row")


def test_window_origins_of_a_window_larger_than_the_image_is_empty():
    assert window_origins((10, 10), (12, 4), 2).shape == (0, 2)


@pytest.mark.parametrize("shape", [(13, 17), (13, 17, 1), (13, 17, 3)])
def test_cut_windows_equals_manual_slicing(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    window_hw = (5, 6)
    origins = window_origins(shape[:2], window_hw, 3)
    windows = cut_windows(image, origins, window_hw)
    assert windows.shape == (len(origins), *window_hw, *shape[2:])
    expected = np.stack([image[y:y + 5, x:x + 6] for y, x in origins])
    np.testing.assert_array_equal(windows, expected)
    windows[0] = 0
    assert image[:5, :6].any(), "the windows are a copy, not a view of the image"


def test_cut_windows_of_no_origins_is_empty_with_the_right_shape():
    out = cut_windows(np.zeros((10, 10, 3), np.uint8), np.empty((0, 2), np.int64), (4, 5))
    assert out.shape == (0, 4, 5, 3)
    assert out.dtype == np.uint8


# --------------------------------------------------------------------------- IoU


def test_iou_matrix_on_hand_computed_pairs():
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 1], [0, 0, 4, 4]], float)
    b = np.array([[0, 0, 10, 10], [1, 0, 3, 1], [10, 10, 20, 20], [1, 1, 3, 3]], float)
    iou = iou_matrix(a, b)
    assert iou.shape == (3, 4)
    assert iou[0, 0] == pytest.approx(1.0), "identical boxes"
    assert iou[0, 2] == pytest.approx(0.0), "touching at a corner only"
    assert iou[1, 1] == pytest.approx(1 / 3), "half of each overlaps: 1 / (2 + 2 - 1)"
    assert iou[2, 3] == pytest.approx(4 / 16), "a box inside another: area ratio"
    assert iou[1, 2] == 0.0 and iou[2, 2] == 0.0, "disjoint"
    np.testing.assert_allclose(iou_matrix(b, a), iou.T)


def test_iou_matrix_of_a_degenerate_box_is_zero_not_nan():
    iou = iou_matrix([[5, 5, 5, 5]], [[5, 5, 5, 5], [0, 0, 10, 10]])
    assert np.isfinite(iou).all()
    np.testing.assert_array_equal(iou, [[0.0, 0.0]])


# --------------------------------------------------------------------------- NMS


def test_nms_keeps_the_best_of_a_cluster_and_disjoint_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 1, 10, 11],
                      [50, 50, 60, 60], [100, 0, 110, 10]], float)
    scores = np.array([0.6, 0.9, 0.7, 0.2, 0.5])
    keep = nms(boxes, scores, 0.3)
    assert list(keep) == [1, 4, 3], "the cluster's best (1), then the disjoint boxes by score"


def test_nms_with_negative_scores_keeps_the_highest():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert list(nms(boxes, [-3.0, -1.0, -2.0], 0.3)) == [1, 2]
    assert list(nms(boxes, [-1.0, -3.0, -2.0], 0.3)) == [0, 2]


def test_nms_drops_only_above_the_iou_threshold():
    boxes = np.array([[0, 0, 4, 1], [0, 0, 2, 1]], float)  # IoU exactly 0.5
    assert list(nms(boxes, [2.0, 1.0], 0.5)) == [0, 1], "IoU equal to the threshold is kept"
    assert list(nms(boxes, [2.0, 1.0], 0.49)) == [0]


def test_nms_of_fractional_boxes_uses_their_real_coordinates():
    # IoU 0.106: integer-truncated boxes would overlap far less (or not at all).
    boxes = np.array([[0.0, 0.0, 1.6, 1.6], [0.9, 0.9, 2.5, 2.5]])
    assert list(nms(boxes, [2.0, 1.0], 0.1)) == [0]
    assert list(nms(boxes, [2.0, 1.0], 0.2)) == [0, 1]


def test_nms_of_no_boxes_is_empty():
    keep = nms(np.empty((0, 4)), np.empty(0), 0.5)
    assert keep.shape == (0,)


def test_nms_per_class_does_not_suppress_across_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 11, 10], [40, 40, 50, 50]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([1, 2, 1, 2])
    keep = nms_per_class(boxes, scores, classes, 0.3)
    assert list(keep) == [0, 1, 3], "box 1 overlaps box 0 but is another class; box 2 is not"


def test_nms_per_class_caps_by_descending_score():
    boxes = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(6)], float)
    scores = np.array([0.1, 0.6, 0.3, 0.9, 0.5, 0.2])
    classes = np.array([1, 2, 1, 2, 1, 2])
    np.testing.assert_array_equal(nms_per_class(boxes, scores, classes, 0.3, cap=3), [3, 1, 4])
    assert len(nms_per_class(boxes, scores, classes, 0.3)) == 6, "no cap keeps all"
    assert len(nms_per_class(boxes, scores, classes, 0.3, cap=None)) == 6


def test_nms_per_class_of_nothing_is_empty():
    out = nms_per_class(np.empty((0, 4)), np.empty(0), np.empty(0, int), 0.3, cap=5)
    assert out.shape == (0,)


# --------------------------------------------------------------------------- sliding windows


class FrameScorer:
    """A window classifier (the :class:`WindowClassifier` protocol): the object score is the
    mean brightness of the window's outer ring minus that of its inside, in 0-1 units."""

    def __init__(self, window: tuple[int, int] = (8, 8)):
        self.window = window
        self.channels = 1
        self.classes = ["background", "frame"]
        self.calls: list[int] = []

    def scores(self, windows: np.ndarray) -> np.ndarray:
        self.calls.append(len(windows))
        pixels = windows.astype(np.float64).reshape(len(windows), *self.window) / 255.0
        ring = np.ones(self.window, bool)
        ring[1:-1, 1:-1] = False
        score = pixels[:, ring].mean(axis=1) - pixels[:, ~ring].mean(axis=1)
        return np.column_stack([1.0 - score, score])


def _frame_image(size: int, top: int, left: int, side: int, thickness: int) -> np.ndarray:
    image = np.zeros((size, size, 1), np.uint8)
    image[top:top + side, left:left + side] = 255
    image[top + thickness:top + side - thickness, left + thickness:left + side - thickness] = 0
    return image


@pytest.mark.parametrize(("level", "size", "top", "left"), [(1, 64, 20, 24), (2, 96, 32, 48)])
def test_a_box_found_at_a_smaller_level_maps_back_to_the_original_pixels(level, size, top, left):
    window = 8
    side = window * 2**level
    image = _frame_image(size, top, left, side, thickness=2**level)
    classifier = FrameScorer((window, window))
    detector = WindowDetector(classifier, Scan(threshold=0.5, scale=2.0, step=2, batch_size=64))
    found = detector.detect(image)
    assert found, "the frame is found"
    best = max(found, key=lambda d: d.score)
    truth = (left, top, left + side, top + side)
    assert iou_matrix([best.xyxy], [truth])[0, 0] > 0.7, \
        f"level {level}: best box {best.xyxy} should cover the frame {truth}"
    assert best.label == "frame"
    assert best.score == pytest.approx(1.0, abs=0.05)
    expected = sum(len(window_origins(lvl.shape[:2], (window, window), 2))
                   for _, lvl in pyramid(image, 2.0, (window, window)))
    assert detector.windows_seen == expected
    assert max(classifier.calls) <= 64


def test_detector_of_an_image_smaller_than_its_window_finds_nothing():
    detector = WindowDetector(FrameScorer((8, 8)), Scan(threshold=0.0))
    assert detector.detect(np.zeros((5, 30, 1), np.uint8)) == []
    assert detector.windows_seen == 0


def test_detector_threshold_above_every_score_finds_nothing():
    image = _frame_image(32, 4, 4, 16, 2)
    detector = WindowDetector(FrameScorer((8, 8)), Scan(threshold=1.5, scale=2.0, step=2))
    assert detector.detect(image) == []
    assert detector.windows_seen > 0


def test_detector_caps_its_detections():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 48, 1), dtype=np.uint8)
    scan = Scan(threshold=-2.0, scale=1.5, step=4, nms_iou=0.99, max_detections=7)
    found = WindowDetector(FrameScorer((8, 8)), scan).detect(image)
    assert len(found) == 7
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


@pytest.mark.parametrize(("batch_size", "upscale"), [(1, 1.0), (7, 1.0), (50, 2.0), (10_000, 1.0)])
def test_scan_windows_yields_every_window_once_in_bounded_batches(batch_size, upscale):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (37, 45, 1), dtype=np.uint8)
    window, step, scale = (8, 10), 3, 1.3
    scan = Scan(threshold=0.0, scale=scale, upscale=upscale, step=step, batch_size=batch_size)
    levels = list(pyramid(image, scale, window, upscale))
    expected = sum(len(window_origins(level.shape[:2], window, step)) for _, level in levels)
    by_factor = {round(factor, 9): level for factor, level in levels}

    batches = list(scan_windows(image, window, scan))
    sizes = [len(w) for w, _ in batches]
    assert sum(sizes) == expected
    assert all(0 < n <= batch_size for n in sizes)
    assert all(n == batch_size for n in sizes[:-1]), "only the last batch is smaller"

    seen = set()
    for windows, boxes in batches:
        assert windows.shape == (len(boxes), *window, 1)
        assert boxes.shape == (len(windows), 4)
        for pixels, box in zip(windows, boxes, strict=True):
            factor = round((box[2] - box[0]) / window[1], 9)
            level = by_factor[factor]
            x, y = round(box[0] / factor), round(box[1] / factor)
            assert (box[3] - box[1]) == pytest.approx(window[0] * factor)
            np.testing.assert_array_equal(pixels, level[y:y + window[0], x:x + window[1]])
            seen.add((factor, y, x))
    assert len(seen) == expected, "every window exactly once"


def test_pad_scans_windows_reaching_past_the_border_over_the_mirrored_image():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (20, 24, 1), dtype=np.uint8)
    window = (8, 8)
    scan = Scan(threshold=0.0, scale=10.0, step=2, pad=0.25)  # one level; 2 pixels past each side
    batches = list(scan_windows(image, window, scan))
    pixels = np.concatenate([w for w, _ in batches])
    boxes = np.concatenate([b for _, b in batches])
    assert len(boxes) == len(window_origins((24, 28), window, 2))
    assert boxes[:, :2].min(axis=0).tolist() == [-2, -2]
    assert boxes[:, 2:].max(axis=0).tolist() == [26, 22]
    mirrored = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    for cut, (x0, y0, _, _) in zip(pixels, boxes.astype(int), strict=True):
        np.testing.assert_array_equal(cut, mirrored[y0 + 2:y0 + 10, x0 + 2:x0 + 10])


class LeftRight:
    """Scores how much brighter a window's left half is than its right half, window by window
    or (``dense``) a whole level at once, as HOG + SVM does."""

    def __init__(self, dense: bool):
        self.window, self.channels, self.classes = (6, 8), 1, ["background", "left"]
        if dense:
            self.level_scores = lambda level, origins: self.scores(
                cut_windows(level, origins, self.window))

    def scores(self, windows: np.ndarray) -> np.ndarray:
        pixels = windows.astype(np.float64)[..., 0] / 255.0
        score = pixels[:, :, :4].mean(axis=(1, 2)) - pixels[:, :, 4:].mean(axis=(1, 2))
        return np.column_stack([-score, score])


@pytest.mark.parametrize("dense", [False, True])
def test_flip_keeps_the_mean_of_a_window_and_its_mirror(dense):
    image = np.random.default_rng(6).integers(0, 256, (24, 30, 1), dtype=np.uint8)
    scan = Scan(threshold=-1e-9, scale=1.5, step=2, nms_iou=1.0, max_detections=0)
    plain = WindowDetector(LeftRight(dense), scan).detect(image)
    assert max(d.score for d in plain) > 0.1
    flipped = WindowDetector(LeftRight(dense), Scan(**{**scan.__dict__, "flip": True}))
    found = flipped.detect(image)
    assert len(found) == flipped.windows_seen, "a window and its mirror cancel: every score is 0"
    assert all(d.score == pytest.approx(0.0, abs=1e-12) for d in found)


# --------------------------------------------------------------------------- box voting


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def test_vote_moves_a_kept_box_to_the_weighted_mean_of_the_boxes_overlapping_it():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [1, 0, 11, 10], [40, 40, 50, 50]], float)
    scores = np.array([2.0, 0.0, 1.0, 1.5])
    classes = np.array([1, 1, 2, 1])
    kept = np.array([0, 3])
    # Box 1 overlaps box 0 by IoU 80/120 = 0.67; box 2 overlaps it more but is another class;
    # box 3 is far away and votes only for itself.
    voted = vote(boxes, scores, classes, kept, iou=0.5)
    w0, w1 = _logistic(2.0), _logistic(0.0)
    np.testing.assert_allclose(voted[0], (w0 * boxes[0] + w1 * boxes[1]) / (w0 + w1))
    assert voted[0, 0] == pytest.approx(2 * w1 / (w0 + w1))  # 0.38 px to the right
    np.testing.assert_allclose(voted[1], boxes[3])
    # Above that overlap the neighbour no longer votes: the boxes stay as NMS kept them.
    np.testing.assert_allclose(vote(boxes, scores, classes, kept, iou=0.7), boxes[kept])


def test_vote_of_nothing_kept_is_empty():
    assert vote(np.empty((0, 4)), np.empty(0), np.empty(0, int), np.empty(0, int), 0.5).shape \
        == (0, 4)


def test_the_detector_votes_only_when_asked_and_keeps_the_scores():
    """A 10-px frame seen through 8-px windows: the boxes around the best one pull it a little
    towards them; without ``vote_iou`` it stays where NMS kept it."""
    image = _frame_image(40, 9, 13, 10, 1)
    plain = WindowDetector(FrameScorer((8, 8)), Scan(threshold=0.1, scale=1.5, step=1, nms_iou=0.3))
    voted = WindowDetector(FrameScorer((8, 8)),
                           Scan(threshold=0.1, scale=1.5, step=1, nms_iou=0.3, vote_iou=0.3))
    before, after = plain.detect(image), voted.detect(image)
    assert before[0].xyxy == (13.0, 9.0, 21.0, 17.0)  # a window's own box, on the frame's corner
    assert [d.score for d in after] == [d.score for d in before]
    moved = np.subtract(after[0].xyxy, before[0].xyxy)
    assert np.all(moved != 0) and np.all(np.abs(moved) < 2), moved
