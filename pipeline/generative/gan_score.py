"""A quality number for a GAN: classify its samples with a classifier trained on the same data.

Reported: the classifier's mean confidence on the samples (sharp, recognisable images score
high), the classes hit, and the entropy of the predicted-class histogram (its maximum, log2 of
the class count, means every class is generated equally often; low entropy is mode collapse).
The same numbers for real images of a split give the scale to read them against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.io.progress import predict_bar


def class_stats(probabilities: np.ndarray, classes: list[str], min_share: float) -> dict[str, Any]:
    """Mean confidence, classes hit (at least ``min_share`` of the predictions) and the entropy
    of the predicted-class histogram, in bits."""
    predicted = probabilities.argmax(axis=1)
    counts = np.bincount(predicted, minlength=len(classes))
    share = counts / max(len(predicted), 1)
    nonzero = share[share > 0]
    return {
        "images": len(predicted),
        "mean_confidence": round(float(probabilities.max(axis=1).mean()), 4),
        "classes_hit": int((share >= min_share).sum()),
        "classes": len(classes),
        "entropy_bits": round(abs(float(-(nonzero * np.log2(nonzero)).sum())), 4),
        "max_entropy_bits": round(float(np.log2(len(classes))), 4),
        "histogram": {label: int(c) for label, c in zip(classes, counts, strict=True)},
    }


def fit_images(images: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """uint8 images resized (bicubic) and converted to the classifier's size and channels."""
    _, h, w, c = images.shape
    if (h, w) == tuple(size) and c == channels:
        return images
    mode = "L" if channels == 1 else "RGB"
    out = []
    for image in images:
        img = Image.fromarray(image[..., 0] if c == 1 else image).convert(mode)
        img = img.resize((size[1], size[0]), Image.Resampling.BICUBIC)
        arr = np.asarray(img)
        out.append(arr[..., None] if channels == 1 else arr)
    return np.stack(out)


def score(generator_dir: Path, classifier_dir: Path, samples: int, seed: int, batch_size: int,
          min_share: float, real_split: Path | None = None) -> tuple[dict[str, Any], np.ndarray,
                                                                     np.ndarray]:
    """The score of ``samples`` generated images (and of ``real_split`` for reference); also the
    images and their probabilities."""
    import keras

    from pipeline.evaluate.evaluation import Scorer
    from pipeline.generative.dcgan import sample
    from pipeline.generative.generator_file import generator_path

    generator = keras.models.load_model(generator_path(generator_dir), compile=False)
    images = sample(generator, samples, seed, batch_size)
    scorer = Scorer(classifier_dir, batch_size)
    if not scorer.is_keras:
        raise ValueError(f"{classifier_dir}: the classifier must be a Keras model folder")
    batch = fit_images(images, tuple(scorer.spec["size"]), int(scorer.spec["channels"]))
    probabilities = scorer.model.predict(
        scorer.preprocessor(batch), batch_size=batch_size, verbose=0,
        callbacks=[predict_bar("classify samples", len(batch), batch_size)])
    result = {"generated": class_stats(probabilities, scorer.classes, min_share)}
    if real_split is not None:
        real = scorer.predict(real_split)
        result["real"] = {"split": real_split.stem,
                          **class_stats(real.probabilities, scorer.classes, min_share)}
    return result, images, probabilities


def labelled_grid(images: np.ndarray, probabilities: np.ndarray, classes: list[str],
                  target: Path, count: int = 25) -> None:
    """The first ``count`` samples, each titled with the predicted class and confidence."""
    from pipeline.evaluate.gallery import titled_grid

    titles = [f"{classes[int(p.argmax())]} {p.max():.2f}" for p in probabilities[:count]]
    titled_grid(images[:count], titles, target,
                "generated samples, classifier's label and confidence")
