"""Detection scoring (pycocotools AP, greedy IoU and UIUC matching, EER) and drawing, on boxes built
by hand whose scores are worked out below."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from PIL import Image

from pipeline.detect.boxes import AnnotatedImage, Box, Detection, to_coco
from pipeline.detect.drawing import (
    FALSE_POSITIVE,
    TRUE_POSITIVE,
    TRUTH,
    crop_grid,
    cut,
    draw,
    misses,
    save_drawn,
    worst_false_positives,
)
from pipeline.detect.scoring import (
    coco_scores,
    dataset_rule_scores,
    eer,
    greedy_match,
    match_image,
    pr_curve,
)


def box(x0, y0, w, h, label="car", source=None) -> Box:
    return Box(label, x0, y0, x0 + w, y0 + h, source)


def det(x0, y0, w, h, score, label="car") -> Detection:
    return Detection(label, score, x0, y0, x0 + w, y0 + h)


def image(*boxes: Box, size=(100, 100)) -> AnnotatedImage:
    return AnnotatedImage("img.png", size[0], size[1], list(boxes))


def pycocotools_stats(images, labels, detections, max_dets=100) -> np.ndarray:
    """COCOeval's own summary (stats[0] mAP, stats[1] AP50), independently of scoring.py."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ids = {label: i + 1 for i, label in enumerate(labels)}
    results = [{"image_id": i + 1, "category_id": ids[d.label], "bbox": d.xywh, "score": d.score}
               for i, dets in enumerate(detections) for d in dets]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = to_coco(images, labels)
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.params.maxDets = [1, 10, max_dets]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


# --- COCO scores -------------------------------------------------------------------------------


def test_perfect_detections_score_one():
    images = [image(box(10, 10, 20, 20)), image(box(5, 40, 30, 15), box(50, 50, 20, 30))]
    detections = [[det(10, 10, 20, 20, 0.9)], [det(5, 40, 30, 15, 0.8), det(50, 50, 20, 30, 0.7)]]
    scores = coco_scores(images, ["car"], detections)
    assert scores["ap50"] == pytest.approx(1.0)
    assert scores["map"] == pytest.approx(1.0)
    assert scores["per_class"]["car"] == pytest.approx({"ap50": 1.0, "map": 1.0})
    assert scores["eer_recall_iou"] == pytest.approx(1.0)
    assert len(scores["pr"]) == 101
    assert all(point["precision"] == pytest.approx(1.0) for point in scores["pr"])


def test_duplicate_keeps_ap_but_is_a_false_positive_when_matched():
    images = [image(box(10, 10, 20, 20))]
    # IoU of the duplicate with the box: 18*20 / (2*400 - 360) = 0.818.
    detections = [[det(10, 10, 20, 20, 0.9), det(12, 10, 20, 20, 0.8)]]
    assert coco_scores(images, ["car"], detections)["ap50"] == pytest.approx(1.0)
    scores, tp, n_gt = greedy_match(images, detections)
    assert scores.tolist() == [0.9, 0.8]
    assert tp.tolist() == [True, False]
    assert n_gt == 1
    rule = dataset_rule_scores(images, detections)
    assert (rule["detections"], rule["true_positives"], rule["objects"]) == (2, 1, 1)


def test_detection_on_negative_image_lowers_ap():
    images = [image(box(10, 10, 20, 20)), image()]
    detections = [[det(10, 10, 20, 20, 0.5)], [det(30, 30, 20, 20, 0.9)]]
    scores = coco_scores(images, ["car"], detections)
    # The false positive ranks first: precision is 1/2 when the one object is found, and the
    # interpolated precision is 1/2 at every recall threshold.
    assert scores["ap50"] == pytest.approx(0.5)
    stats = pycocotools_stats(images, ["car"], detections)
    assert scores["ap50"] == pytest.approx(stats[1])
    assert scores["map"] == pytest.approx(stats[0])
    _, tp, _ = greedy_match(images, detections)
    assert tp.tolist() == [False, True]
    # Without the negative image's detection the AP is back to 1.
    assert coco_scores(images, ["car"], [detections[0], []])["ap50"] == pytest.approx(1.0)


def test_two_classes_average_over_classes_with_truth():
    images = [image(box(0, 0, 20, 20, "a"), box(50, 50, 20, 20, "b")),
              image(box(10, 60, 20, 20, "b"))]
    # a: found; b: one of two found, nothing wrong; the "c" class has no ground truth.
    detections = [[det(0, 0, 20, 20, 0.9, "a"), det(50, 50, 20, 20, 0.8, "b")], []]
    scores = coco_scores(images, ["a", "b", "c"], detections)
    # b: precision 1 up to recall 1/2, then none: the recall thresholds 0, 0.01 .. 0.5 (51 of 101).
    assert scores["per_class"]["a"]["ap50"] == pytest.approx(1.0)
    assert scores["per_class"]["b"]["ap50"] == pytest.approx(51 / 101)
    assert scores["per_class"]["c"] is None
    assert scores["ap50"] == pytest.approx((1 + 51 / 101) / 2)
    stats = pycocotools_stats(images, ["a", "b", "c"], detections)
    assert scores["ap50"] == pytest.approx(stats[1])
    assert scores["map"] == pytest.approx(stats[0])
    # The curve averages the two classes: 1 up to recall 0.5, then (1 + 0) / 2.
    curve = {round(p["recall"], 2): p["precision"] for p in scores["pr"]}
    assert curve[0.5] == pytest.approx(1.0)
    assert curve[0.51] == pytest.approx(0.5)
    # A wrong label is no match.
    _, tp, n_gt = greedy_match(images, [[det(0, 0, 20, 20, 0.9, "b")], []])
    assert tp.tolist() == [False]
    assert n_gt == 3


def test_no_detections_score_zero():
    images = [image(box(10, 10, 20, 20)), image()]
    scores = coco_scores(images, ["car"], [[], []])
    assert scores["ap50"] == 0.0
    assert scores["map"] == 0.0
    assert scores["eer_recall_iou"] == 0.0
    rule = dataset_rule_scores(images, [[], []])
    assert rule["eer_recall"] == 0.0
    assert rule["f"] == 0.0
    assert rule["eer_threshold"] is None


def test_iou_threshold_decides():
    truth = image(box(0, 0, 10, 10))
    found = [det(0, 0, 10, 4.5, 0.9)]  # IoU 45 / 100
    assert match_image(truth, found)[0].tolist() == [False]
    tp, matched = match_image(truth, found, iou=0.4)
    assert tp.tolist() == [True]
    assert matched.tolist() == [True]
    assert greedy_match([truth], [found], iou=0.4)[1].tolist() == [True]
    assert coco_scores([truth], ["car"], [found])["ap50"] == 0.0


def test_detection_takes_the_box_it_overlaps_most():
    truth = image(box(0, 0, 20, 20), box(8, 0, 20, 20))
    # IoU 0.6 with the first box, 0.74 with the second.
    tp, matched = match_image(truth, [det(5, 0, 20, 20, 0.9)])
    assert tp.tolist() == [True]
    assert matched.tolist() == [False, True]


def test_more_than_100_detections_in_one_image_all_count():
    boxes = [box(12 * (i % 15), 12 * (i // 15), 10, 10) for i in range(150)]
    images = [image(*boxes, size=(200, 200))]
    detections = [[det(b.x0, b.y0, 10, 10, 1.0 - i / 1000) for i, b in enumerate(boxes)]]
    scores = coco_scores(images, ["car"], detections)
    assert scores["ap50"] == pytest.approx(1.0)
    # pycocotools' default cap of 100 would have found only 100 of the 150.
    assert pycocotools_stats(images, ["car"], detections)[1] < 0.7
    assert pycocotools_stats(images, ["car"], detections, max_dets=150)[1] == pytest.approx(1.0)


def test_coco_scores_rejects_unknown_labels_and_length_mismatch():
    images = [image(box(0, 0, 10, 10))]
    with pytest.raises(ValueError, match="dog"):
        coco_scores(images, ["car"], [[det(0, 0, 10, 10, 0.9, "dog")]])
    with pytest.raises(ValueError, match="detection lists"):
        coco_scores(images, ["car"], [])
    with pytest.raises(ValueError, match="rule"):
        match_image(images[0], [det(0, 0, 10, 10, 0.9)], rule="centre")


# --- the UIUC criterion ------------------------------------------------------------------------


@pytest.mark.parametrize(("shift", "hit"), [(0.2, True), (0.3, False)])
def test_uiuc_ellipse_along_the_width(shift, hit):
    truth = image(box(50, 50, 100, 40), size=(300, 200))
    found = [det(50 + shift * 100, 50, 100, 40, 0.9)]
    assert match_image(truth, found, rule="uiuc")[0].tolist() == [hit]


def test_uiuc_ellipse_is_an_ellipse_not_a_rectangle():
    truth = image(box(50, 50, 100, 40), size=(300, 200))
    # 20% of the width and 20% of the height: 0.8² + 0.8² = 1.28 > 1, though each alone is in.
    assert match_image(truth, [det(70, 58, 100, 40, 0.9)], rule="uiuc")[0].tolist() == [False]
    assert match_image(truth, [det(50, 58, 100, 40, 0.9)], rule="uiuc")[0].tolist() == [True]
    # One detection per object: a second inside the ellipse is a false positive.
    found = [det(55, 50, 100, 40, 0.5), det(50, 50, 100, 40, 0.9)]
    assert match_image(truth, found, rule="uiuc")[0].tolist() == [False, True]


def test_uiuc_scale_adds_the_width_to_the_ellipsoid():
    truth = image(box(50, 50, 100, 40), size=(300, 200))
    # Same centre (100, 70), width 140: 40% larger. Location alone: a hit; with scale: a miss.
    wide = [det(30, 42, 140, 56, 0.9)]
    assert match_image(truth, wide, rule="uiuc")[0].tolist() == [True]
    assert match_image(truth, wide, rule="uiuc_scale")[0].tolist() == [False]
    # 20% larger, same centre: in; 20% larger and 20% of the width off-centre: 0.64 + 0.64 > 1.
    assert match_image(truth, [det(40, 46, 120, 48, 0.9)], rule="uiuc_scale")[0].tolist() == [True]
    assert match_image(truth, [det(60, 46, 120, 48, 0.9)], rule="uiuc_scale")[0].tolist() == [False]


def test_uiuc_uses_the_unclipped_source_box():
    # The car reaches 40 px past the left edge: clipped, it is 60 wide with its centre at 30.
    clipped = box(0, 10, 60, 40, source=(-40, 10, 60, 50))
    found = [det(-40, 10, 100, 40, 0.9)]  # centre 10: on the true centre; 20 px off the clipped one
    assert match_image(image(clipped), found, rule="uiuc")[0].tolist() == [True]
    assert match_image(image(box(0, 10, 60, 40)), found, rule="uiuc")[0].tolist() == [False]


# --- PR curve and the equal-error point --------------------------------------------------------


def test_eer_interpolates_a_constructed_curve():
    recall = np.array([0.2, 0.4, 0.6, 0.8])
    precision = np.array([1.0, 0.8, 0.5, 0.4])
    # precision - recall: 0.8, 0.4, -0.1, -0.4; zero at 0.8 of the way from point 1 to point 2.
    point = eer(recall, precision, np.array([0.9, 0.8, 0.7, 0.6]))
    assert point["recall"] == pytest.approx(0.56)
    assert point["precision"] == pytest.approx(0.56)
    assert point["threshold"] == pytest.approx(0.7)
    # Precision always above recall: the closest point.
    assert eer(np.array([0.1, 0.3]), np.array([1.0, 0.9]))["recall"] == pytest.approx(0.3)
    assert eer(np.array([0.0, 0.0]), np.array([0.0, 0.0])) == {
        "recall": 0.0, "precision": 0.0, "threshold": None}


def test_eer_from_matching_keeps_as_many_detections_as_objects():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    tp = np.array([False, True, True, False, True, False])
    recall, precision, thresholds = pr_curve(scores, tp, n_gt=4)
    assert recall.tolist() == pytest.approx([0, 0.25, 0.5, 0.5, 0.75, 0.75])
    assert precision.tolist() == pytest.approx([0, 1 / 2, 2 / 3, 2 / 4, 3 / 5, 3 / 6])
    point = eer(recall, precision, thresholds)
    # The top four hold two objects: precision = recall = 2/4 there.
    assert point == pytest.approx({"recall": 0.5, "precision": 0.5, "threshold": 0.6})


def test_pr_curve_merges_tied_scores():
    recall, precision, thresholds = pr_curve(np.array([0.9, 0.5, 0.5]),
                                             np.array([True, False, True]), n_gt=2)
    assert thresholds.tolist() == [0.9, 0.5]
    assert recall.tolist() == [0.5, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 2 / 3])


def test_dataset_rule_scores_best_f():
    truth = [image(box(0, 0, 100, 40), size=(300, 200)), image(box(0, 0, 100, 40), size=(300, 200))]
    found = [[det(5, 0, 100, 40, 0.9), det(150, 100, 100, 40, 0.8)], [det(0, 2, 100, 40, 0.3)]]
    scores = dataset_rule_scores(truth, found, rule="uiuc")
    # Order: TP (0.9), FP (0.8), TP (0.3); with 2 objects the top two give recall = precision = 1/2.
    assert scores["eer_recall"] == pytest.approx(0.5)
    assert scores["eer_precision"] == pytest.approx(0.5)
    assert scores["eer_threshold"] == pytest.approx(0.8)
    # F: 2/3 at 0.9 (p 1, r 1/2) and 0.8 at 0.3 (p 2/3, r 1).
    assert scores["f"] == pytest.approx(0.8)
    assert (scores["precision"], scores["recall"]) == pytest.approx((2 / 3, 1.0))
    assert scores["f_threshold"] == pytest.approx(0.3)


# --- drawing -----------------------------------------------------------------------------------


def test_draw_colours_and_enlarges():
    array = np.full((20, 30), 128, np.uint8)
    truth = [box(2, 2, 6, 6)]
    found = [det(12, 10, 6, 6, 0.9), det(22, 10, 6, 6, 0.4)]
    picture = draw(array, truth, found, [True, False])
    factor = 13  # ceil(256 / 20)
    assert picture.size == (30 * factor, 20 * factor)
    assert picture.mode == "RGB"
    # Bottom edges: box (x0, y0, x1, y1) is outlined on pixel rows y1 * factor - 1.
    assert picture.getpixel((5 * factor, 8 * factor - 1)) == TRUTH
    assert picture.getpixel((15 * factor, 16 * factor - 1)) == TRUE_POSITIVE
    assert picture.getpixel((25 * factor, 16 * factor - 1)) == FALSE_POSITIVE
    # Away from the boxes the image is unchanged.
    assert picture.getpixel((factor // 2, 19 * factor)) == (128, 128, 128)
    # Large colour images keep their size.
    big = np.zeros((300, 400, 3), np.uint8)
    assert draw(big, truth, [], []).size == (400, 300)
    with pytest.raises(ValueError, match="flags"):
        draw(array, truth, found, [True])


def test_save_drawn_writes_a_png(tmp_path):
    target = tmp_path / "out" / "drawn.png"
    save_drawn(target, np.zeros((40, 100, 1), np.uint8), [box(0, 0, 100, 40)], [], [])
    with Image.open(target) as written:
        assert written.size == (700, 280)  # factor ceil(256 / 40) = 7
    assert [p.name for p in target.parent.iterdir()] == ["drawn.png"]


def test_crop_grid_tiles_and_empty_grid():
    crops = [np.full((h, w), 200, np.uint8) for h, w in [(40, 100), (10, 10), (30, 5)]]
    crops.append(np.zeros((20, 20, 3), np.uint8))
    crops.append(cut(np.full((50, 50), 255, np.uint8), (40, 40, 60, 60)))
    grid = crop_grid(crops, [f"crop {i}" for i in range(5)], cols=2, tile=(64, 48))
    assert grid.width == 2 * 64
    rows = 3
    assert grid.height % rows == 0
    assert grid.height // rows > 48
    # The 10 x 10 crop fills its whole 64 x 48 tile's height.
    assert grid.getpixel((64 + 32, 24)) == (200, 200, 200)
    empty = np.asarray(crop_grid([], []))
    assert empty.shape[0] < 64
    assert (empty < 128).any()  # the word "none"
    assert cut(np.zeros((50, 50)), (40, 40, 60, 60)).shape == (12, 12)


def test_worst_false_positives_and_misses():
    images = [image(box(0, 0, 10, 10), box(50, 50, 30, 30)), image(), image(box(0, 0, 20, 20))]
    detections = [[det(0, 0, 10, 10, 0.9), det(20, 20, 10, 10, 0.3)],
                  [det(5, 5, 10, 10, 0.8)], []]
    worst = worst_false_positives(images, detections, k=5)
    assert [(i, d.score) for i, d in worst] == [(1, 0.8), (0, 0.3)]
    assert worst_false_positives(images, detections, k=1) == worst[:1]
    missed = misses(images, detections, k=5)
    assert [(i, b.width) for i, b in missed] == [(0, 30), (2, 20)]
