"""Writing a trained model as ONNX, SavedModel or LiteRT, with an ``export.json`` manifest.

Keras 3's ``model.export(path, format=...)`` does the conversion (tf2onnx for ONNX, the TFLite
converter for LiteRT, ``tf.saved_model.save`` for SavedModel); ``onnx`` names the ONNX batch
dimension. What is exported is :func:`~pipeline.export.baking.baked_model`: the preprocessing is
in the graph, and ``export.json`` says so (``"preprocessing": "baked"``) beside the input shape
and dtype, the classes, how to decode an image and the SHA-256 of the source ``model.keras``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.export.runtimes import MANIFEST
from pipeline.io.atomic import write_json
from pipeline.io.errors import InputError
from pipeline.train.preprocess import Preprocessor, load_spec

#: format (``export.formats``) -> (Keras's name for it, the file it writes in the export folder;
#: "" for the folder itself).
KERAS_FORMATS: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "model.onnx"),
    "saved_model": ("tf_saved_model", ""),
    "litert": ("litert", "model.tflite"),
}

#: format -> the runtime that scores it (:mod:`pipeline.export.runtimes`).
RUNTIME_NAMES = {"onnx": "onnxruntime", "saved_model": "tf.saved_model.load",
                 "litert": "ai_edge_litert.interpreter"}

#: The settings of ``preprocess.json`` that say how an image file becomes the stored array.
DECODE_KEYS = ("size", "channels", "resize", "interpolation")


@dataclass
class Source:
    """A trained model folder, loaded: the Keras model, its preprocessing, how images are read."""

    folder: Path
    model: Any
    preprocessor: Preprocessor
    spec: dict[str, Any]
    sha256: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of a stored (decoded) image: the export's input."""
        return (*self.spec["size"], self.spec["channels"])

    def decode(self) -> dict[str, Any]:
        """How to read an image file into the export's input (the hdf5 stage's defaults for
        what ``preprocess.json`` leaves out)."""
        from pipeline.config import Hdf5Params

        defaults = Hdf5Params().model_dump()
        return {key: self.spec.get(key, defaults.get(key)) for key in DECODE_KEYS}


def load_source(folder: Path, key: str = "export.model") -> Source:
    """The model in ``folder`` (``model.keras`` + ``preprocess.json``, as the train stage
    writes them); :class:`InputError` naming ``key`` and the missing file otherwise."""
    folder = Path(folder)
    for name in ("model.keras", "preprocess.json"):
        if not (folder / name).is_file():
            raise InputError(f"{key}: no {folder / name} (the train stage writes model.keras "
                             "and preprocess.json)")
    from pipeline.models import zoo

    preprocessor, spec = load_spec(folder / "preprocess.json")
    model = zoo.load(folder / "model.keras")
    if "size" not in spec or "channels" not in spec:
        if preprocessor.crop or preprocessor.size or preprocessor.rgb:
            raise InputError(f"{key}: {folder / 'preprocess.json'} lacks size and channels")
        spec = {**spec, "size": list(model.input_shape[1:3]), "channels": model.input_shape[3]}
    digest = hashlib.sha256((folder / "model.keras").read_bytes()).hexdigest()
    return Source(folder, model, preprocessor, spec, digest)


def export(source: Source, fmt: str, folder: Path) -> dict[str, Any]:
    """Write ``source`` as ``fmt`` into ``folder`` (new or empty), with ``export.json``; return
    the manifest."""
    from pipeline.export.baking import INPUT_NAME, baked_model, input_spec

    keras_format, file_name = KERAS_FORMATS[fmt]
    model = baked_model(source.model, source.preprocessor, source.image_shape)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name if file_name else folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras's numpy-2 patch of tf2onnx
        model.export(str(target), format=keras_format, verbose=False,
                     input_signature=[input_spec(source.image_shape)])
    if fmt == "onnx":
        _name_batch_dimension(target)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    manifest = {
        "format": fmt,
        "files": files,
        "runtime": RUNTIME_NAMES[fmt],
        "input": {"name": INPUT_NAME, "shape": [None, *source.image_shape], "dtype": "uint8"},
        "output": {"shape": [None, len(source.spec["classes"])], "dtype": "float32",
                   "values": "class probabilities"},
        "preprocessing": "baked",
        "preprocess": source.preprocessor.to_dict(),
        "decode": source.decode(),
        "classes": source.spec["classes"],
        "source": {"model": str(source.folder / "model.keras"), "sha256": source.sha256},
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


def _name_batch_dimension(path: Path) -> None:
    """Call the first dimension of the ONNX graph's inputs and outputs ``batch`` (tf2onnx
    leaves ``unk__N``), and check the model."""
    import onnx

    graph = onnx.load(path)
    for value in [*graph.graph.input, *graph.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(graph)
    onnx.save(graph, path)


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; if the block succeeds, it replaces ``out``
    (renames). If it fails, ``out`` is as it was and the temporary folder is gone."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
