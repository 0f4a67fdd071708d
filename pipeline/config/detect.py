"""Params of the detection stages: annotated data, training windows, HOG + SVM, detect, score."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Fraction, PosInt, Section


class ScenesParams(Section):
    """The embedded detection default: scikit-learn's digits pasted onto scikit-image's photos."""

    seed: int = Field(0, ge=0, description="Seed of the scenes (where, which digit, how large).")

    images: PosInt = Field(96, description="Scenes to make (train and test together).")
    negatives: Fraction = Field(0.25, description="Share of scenes with no digit at all.")
    image_size: tuple[PosInt, PosInt] = Field((96, 96), description="[height, width] of a scene.")
    object_sizes: tuple[PosInt, PosInt] = Field(
        (16, 28), description="[smallest, largest] side of a pasted digit, in pixels."
    )
    objects: tuple[PosInt, PosInt] = Field(
        (1, 3), description="[fewest, most] digits in a scene that has any (they never overlap)."
    )
    digits: list[Literal[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]] = Field(
        [0, 1, 7], min_length=1, description="Which digit classes to paste; each is a label."
    )

    @model_validator(mode="after")
    def _ranges(self) -> ScenesParams:
        for key in ("object_sizes", "objects"):
            low, high = getattr(self, key)
            if low > high:
                raise ValueError(f"{key}: [{low}, {high}] is not [smallest, largest]")
        if self.object_sizes[1] > min(self.image_size):
            raise ValueError(f"object_sizes: {self.object_sizes[1]} exceeds the scene's "
                             f"image_size {list(self.image_size)}")
        return self


class DetectSourceParams(Section):
    """Where the annotated images come from."""

    format: Literal["csv", "voc", "coco", "uiuc"] = Field(
        "csv",
        description="csv: rows path,label,xmin,ymin,xmax,ymax in pixels (an image under the "
        "images folder with no row is a negative image); voc: a folder of PASCAL VOC XML files; "
        "coco: a COCO JSON file; uiuc: the UIUC cars folder (CarData), which defines its own "
        "test set.",
    )
    path: str = Field(
        "data/embedded/scenes",
        description="csv: the CSV file, or a folder holding annotations.csv; coco: the JSON "
        "file, or a folder holding annotations.json; voc: the folder of XML files; uiuc: the "
        "CarData folder. A DVC dependency of detect_data: prefer a folder that holds the "
        "images too. The default is the embedded scenes the embed stage writes.",
    )
    images: str = Field(
        "", description="Folder the annotations' image paths are relative to (csv: also where "
        "negative images are listed from); empty: the annotation file's own folder. Images "
        "outside `path` are not DVC dependencies."
    )
    uiuc_test: Literal["single", "multi"] = Field(
        "single", description="uiuc: the single-scale (170 images) or multi-scale (108) test set."
    )


class DetectDataParams(Section):
    """Checks annotated images and splits them by image into train and test."""

    source: DetectSourceParams = DetectSourceParams()
    labels: list[str] = Field(
        [], description="The classes to detect; boxes of any other label are listed and "
        "ignored. Empty: every label found."
    )
    test_fraction: Fraction = Field(
        0.25, description="Share of images in the test split (hash of the file, stable); "
        "unused where the source defines its test set (uiuc)."
    )
    max_reject_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="Stop (exit 2) when more than this share of the "
        "images is rejected (unreadable, or a box of zero size or outside the image)."
    )


class DetectWindowsParams(Section):
    """Cuts training windows into the HDF5 layout ``train`` and ``evaluate`` read."""

    window: tuple[PosInt, PosInt] = Field(
        (16, 16), description="[height, width] of a window; UIUC cars: [40, 100]."
    )
    channels: Literal[1, 3] = Field(1, description="1: greyscale, 3: RGB.")
    positives_per_box: PosInt = Field(4, description="Jittered copies cut from each box.")
    jitter: float = Field(
        0.1, ge=0.0, lt=0.5, description="Largest shift (share of the box side) and scale "
        "change of a jittered copy; the first copy is the box itself."
    )
    negatives_per_image: PosInt = Field(
        12, description="Random background windows from each training image."
    )
    negatives_per_box: int = Field(
        0, ge=0, description="Background windows cut beside each box: partly over it (IoU "
        "with it above 0 and at most negative_iou), so a window on part of an object is "
        "learnt as background. On the default scenes at step 4 it costs AP (0.73 -> 0.62)."
    )
    zoom_negatives: int = Field(
        0, ge=0, description="Background windows per box on the box itself (shifted by up to "
        "jitter) but zoom_scales times larger or smaller, half each: the object at the wrong "
        "scale is background, so the pyramid level that fits it scores best."
    )
    zoom_scales: tuple[float, float] = Field(
        (1.3, 1.8), description="[smallest, largest] zoom of a zoom negative (above 1: the "
        "window's side over the box's, or the box's over the window's)."
    )
    @field_validator("zoom_scales")
    @classmethod
    def _zoom(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 1.0 < value[0] <= value[1]:
            raise ValueError(f"{list(value)} is not [smallest, largest], both above 1")
        return value

    fill_outside: bool = Field(
        False, description="Windows beside a box and zoom negatives may reach past the image "
        "border; the part outside is a negative image of the same split (one without boxes), "
        "mirrored to size. For data of tight crops (the UIUC cars), where such windows do not "
        "fit in the image. Without negative images they stay inside."
    )
    negative_iou: Fraction = Field(
        0.1, description="A background window overlaps every box by at most this IoU."
    )
    negative_scales: tuple[float, float] = Field(
        (1.0, 3.0), description="[smallest, largest] background window side as a multiple of "
        "the window size."
    )
    val: Fraction = Field(0.15, description="Share of training images whose windows validate.")
    background: str = Field("background", min_length=1, description="Name of the no-object class.")


class HogSvmParams(Section):
    """HOG features and a linear SVM, with hard-negative mining (Dalal & Triggs, 2005)."""

    orientations: PosInt = Field(9, description="HOG orientation bins.")
    pixels_per_cell: tuple[PosInt, PosInt] = Field((4, 4), description="HOG cell [height, width].")
    cells_per_block: tuple[PosInt, PosInt] = Field((2, 2), description="HOG block in cells.")
    c_values: list[float] = Field(
        [0.01, 0.1, 1.0], min_length=1, description="LinearSVC C values; the best by "
        "cross-validated accuracy is kept."
    )
    folds: int = Field(3, ge=2, description="Cross-validation folds for C.")
    mining_rounds: int = Field(1, ge=0, description="Rounds of hard-negative mining.")
    mining_max: PosInt = Field(
        2000, description="Most false positives added per round (the highest-scoring)."
    )
    mining_step: PosInt = Field(4, description="Sliding-window step while mining, in pixels.")
    mining_scale: float = Field(1.25, gt=1.0, description="Pyramid scale step while mining.")


class DetectorParams(Section):
    """One detector of the ``detect`` stage."""

    model: str = Field(
        ..., description="A window classifier's folder (detect_train, hog_svm, train_logreg), "
        "`cascade:NAME` for an OpenCV cascade shipped with opencv (e.g. "
        "cascade:haarcascade_frontalface_default.xml), or the path of a cascade XML."
    )
    threshold: float = Field(
        0.0, description="Lowest score kept: the class's log-odds log(p / (1 - p)) for Keras "
        "models (0: p = 0.5; unlike p it does not saturate at 1.0), the probability for "
        "logistic regression, the SVM margin for HOG + SVM, the level weight for cascades."
    )


class CascadeParams(Section):
    """``cv2.CascadeClassifier.detectMultiScale`` settings for cascade detectors."""

    scale_factor: float = Field(1.1, gt=1.0, description="Pyramid step (scaleFactor).")
    min_neighbors: int = Field(3, ge=0, description="Overlapping hits a box needs (minNeighbors).")
    min_size: tuple[PosInt, PosInt] = Field((24, 24), description="[width, height] (minSize).")


class DetectParams(Section):
    """Runs each detector over the test images: pyramid, sliding window, batches, NMS."""

    detectors: dict[str, DetectorParams] = Field(
        {"cnn": DetectorParams(model="models/detect_train", threshold=-1.0),
         "hog": DetectorParams(model="models/hog_svm", threshold=-0.5)},
        description="Name -> detector. Each is run over the same images and scored alike.",
    )
    scale: float = Field(1.25, gt=1.0, description="Pyramid: each level is this much smaller.")
    upscale: float = Field(
        1.0, gt=0.0, description="Pyramid: the first level's size as a multiple of the image "
        "(above 1 finds objects smaller than the window)."
    )
    step: PosInt = Field(4, description="Sliding-window step, in pixels of each level.")
    pad: float = Field(
        0.0, ge=0.0, lt=0.5, description="Windows may reach past the image border by this "
        "share of their height and width (the level mirrored beyond it), so objects cut by the "
        "border are found; their boxes reach past it too."
    )
    flip: bool = Field(
        False, description="Score each window and its mirror image (left to right) and keep "
        "the mean: twice the work, steadier scores for objects seen from either side."
    )
    batch_size: PosInt = Field(512, description="Windows classified per batch.")
    nms_iou: float = Field(0.3, gt=0.0, le=1.0, description="Per-class NMS: IoU that suppresses.")
    vote_iou: float | None = Field(
        None, gt=0.0, le=1.0, description="Box voting (window classifiers): each box NMS keeps "
        "moves to the mean of the boxes overlapping it by at least this IoU, weighted by their "
        "scores through the logistic function; null: the kept boxes as they are. Sharpens "
        "position and size where the pyramid's levels are coarse."
    )
    max_detections: int = Field(100, ge=0, description="Most boxes kept per image (0: no cap).")
    cascade: CascadeParams = CascadeParams()


class DetectEvaluateParams(Section):
    """Scores every detector on the test split with pycocotools and draws the results."""

    criterion: Literal["iou", "uiuc"] = Field(
        "iou", description="Also score by the dataset's own rule: uiuc (the centre within an "
        "ellipse of 25% of the object's size, one detection per object)."
    )
    draw: int = Field(6, ge=0, description="Test images drawn with ground truth and detections.")
    grid: PosInt = Field(16, description="Worst false positives and misses shown per detector.")
