"""Running an export with its own runtime: onnxruntime, ``tf.saved_model.load``, LiteRT.

Each loader returns a function from a uint8 ``(N, H, W, C)`` batch (any N) to float32
probabilities. ONNX needs onnxruntime and numpy only (no TensorFlow, no Keras: the preprocessing
is in the graph), LiteRT ``ai_edge_litert``'s interpreter; SavedModel needs TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.atomic import read_json
from pipeline.io.errors import InputError

#: The manifest every export folder holds (:mod:`pipeline.export.formats` writes it).
MANIFEST = "export.json"

#: The model files a path may name directly, by format.
FILE_SUFFIXES = {".onnx": "onnx", ".tflite": "litert"}

Run = Callable[[np.ndarray], np.ndarray]


@dataclass
class Exported:
    """An export, loaded: its manifest (``export.json``) and the function that runs it."""

    manifest: dict[str, Any]
    run: Run

    @property
    def classes(self) -> list[str]:
        return self.manifest["classes"]


def is_export(path: Path) -> bool:
    """Whether ``path`` is an export: a folder with ``export.json``, or a .onnx/.tflite file."""
    path = Path(path)
    return (path / MANIFEST).is_file() if path.is_dir() else path.suffix in FILE_SUFFIXES


def read_manifest(path: Path) -> tuple[dict[str, Any], Path]:
    """The manifest of the export at ``path`` (a folder, or its model file) and the path its
    runtime opens; :class:`InputError` naming the file when there is none."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / MANIFEST).is_file():
        raise InputError(f"no {folder / MANIFEST} (cvpipe export and the export stage write it "
                         "beside the model file)")
    manifest = read_json(folder / MANIFEST)
    fmt = manifest.get("format")
    if fmt not in LOADERS:
        raise InputError(f"{folder / MANIFEST}: unknown format {fmt!r}")
    if path.is_dir():
        files = [f for f in manifest["files"] if Path(f).suffix in FILE_SUFFIXES]
        path = folder / files[0] if files else folder
    elif FILE_SUFFIXES.get(path.suffix) != fmt:
        raise InputError(f"{path}: not the {fmt} model {folder / MANIFEST} describes")
    return manifest, path


def load(path: Path, threads: int | None = None) -> Exported:
    """The export at ``path``, ready to run on ``threads`` threads (None: the runtime's
    default)."""
    manifest, model_path = read_manifest(path)
    return Exported(manifest, LOADERS[manifest["format"]](model_path, threads))


def onnx_runner(path: Path, threads: int | None = None) -> Run:
    """An ONNX model on onnxruntime's CPU provider."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: np.ascontiguousarray(batch)})[0]


def saved_model_runner(path: Path, threads: int | None = None) -> Run:
    """A SavedModel's ``serve`` endpoint (``threads`` is TensorFlow's process-wide setting,
    left alone)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # kept: the endpoint needs its variables alive
    return lambda batch: loaded.serve(tf.constant(batch)).numpy()


def litert_runner(path: Path, threads: int | None = None) -> Run:
    """A .tflite model on the LiteRT interpreter, its input resized to each batch's size."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]["index"]
    shape: list[int | None] = [None]

    def run(batch: np.ndarray) -> np.ndarray:
        if shape[0] != len(batch):
            interpreter.resize_tensor_input(source["index"], list(batch.shape))
            interpreter.allocate_tensors()
            shape[0] = len(batch)
        interpreter.set_tensor(source["index"], np.ascontiguousarray(batch))
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return run


LOADERS: dict[str, Callable[[Path, int | None], Run]] = {
    "onnx": onnx_runner, "saved_model": saved_model_runner, "litert": litert_runner,
}


def predict_batches(run: Run, images: Any, batch_size: int) -> np.ndarray:
    """``run`` over ``images`` (an array, or a :class:`~pipeline.io.hdf5.Split` read slice by
    slice) in batches of ``batch_size``; the probabilities in order."""
    count = len(images)
    parts = []
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        batch = images.read(start, stop) if hasattr(images, "read") else images[start:stop]
        parts.append(np.asarray(run(batch), dtype=np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
