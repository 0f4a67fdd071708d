"""Batches from a split's HDF5 file for ``model.fit``, ``evaluate`` and ``predict``.

A split that fits in ``memory_limit_mb`` is read once and shuffled per epoch in memory. A larger
one is streamed: each epoch visits contiguous blocks of ``block_size`` images in a new random
order, and a window of several blocks is read with a few contiguous slices and shuffled before it
is cut into batches. (Reading HDF5 with a random index list is about 30 times slower than
contiguous slices.) Every order is derived from ``(seed, epoch)`` and every random crop and
augmentation of a batch from ``(seed, epoch, batch)``, so a run repeats exactly and a resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import h5py
import keras
import numpy as np

from pipeline.io.hdf5 import Split
from pipeline.train.augment import Augmenter
from pipeline.train.preprocess import Preprocessor

#: Streaming windows hold at least this many blocks, so batches mix several parts of the file.
WINDOW_BLOCKS = 4


def _runs(sorted_idx: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` runs in sorted indices."""
    if sorted_idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_idx) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [sorted_idx.size]))
    return [(int(sorted_idx[a]), int(sorted_idx[b - 1]) + 1) for a, b in zip(starts, stops,
                                                                            strict=True)]


class HDF5Loader(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` over one split file, yielding ``(images, labels)``.

    Labels are class indices (use a sparse loss), or with ``one_hot`` (the number of classes)
    one-hot float32 rows (a categorical loss; MixUp and CutMix need them). With ``shuffle`` the
    order changes every epoch; ``augment`` (:class:`pipeline.train.augment.Augmenter`, its
    mixers included) and random crops apply only when ``training``.
    Pass ``shuffle=False`` to ``model.fit``: the loader shuffles, Keras need not.
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int,
        preprocessor: Preprocessor,
        *,
        training: bool = False,
        augment: Augmenter | None = None,
        seed: int = 0,
        memory_limit_mb: int = 1024,
        block_size: int = 256,
        workers: int = 1,
        epoch: int = 0,
        one_hot: int | None = None,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=16)
        self.split = Split(path)
        if len(self.split) == 0:
            raise ValueError(f"{path} holds no images")
        self.batch_size = batch_size
        self.preprocessor = preprocessor
        self.training = training
        self.augment = augment if training else None
        if self.augment is not None and self.augment.mixers and not one_hot:
            raise ValueError("MixUp and CutMix mix labels: the loader needs one_hot=<classes>")
        self.one_hot = one_hot
        self.seed = seed
        self.block_size = block_size
        self.in_memory = self.split.nbytes <= memory_limit_mb * 2**20
        self._images = self.split.read() if self.in_memory else None
        self._file: h5py.File | None = None
        self._lock = threading.Lock()
        self._windows: dict[int, np.ndarray] = {}
        window = max(WINDOW_BLOCKS * block_size, batch_size)
        self._window = math.ceil(window / batch_size) * batch_size
        self.set_epoch(epoch)

    # -- ordering ---------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Fix the order for ``epoch`` (epochs count from 0; resuming sets it directly)."""
        self.epoch = epoch
        n = len(self.split)
        with self._lock:
            self._windows.clear()
        if not self.training:
            self._order = np.arange(n)
            return
        rng = np.random.default_rng([self.seed, epoch])
        if self.in_memory:
            self._order = rng.permutation(n)
            return
        blocks = np.arange(0, n, self.block_size)
        order = np.concatenate(
            [np.arange(s, min(s + self.block_size, n)) for s in rng.permutation(blocks)]
        )
        for start in range(0, n, self._window):
            rng.shuffle(order[start:start + self._window])
        self._order = order

    def batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``step % len(self)`` of epoch ``step // len(self)``: a global step index, so a
        pipeline that reads ahead across an epoch boundary still gets each epoch's own order."""
        epoch, index = divmod(int(step), len(self))
        with self._lock:
            stale = epoch != self.epoch
        if stale:
            self.set_epoch(epoch)
        return self[index]

    def on_epoch_end(self) -> None:
        """Move to the next order. Keras also calls this once when ``fit`` starts
        (``EpochIterator.reset``), on every backend, so the sequence of orders a run sees depends
        only on the epoch it starts from."""
        self.set_epoch(self.epoch + 1)

    # -- reading ----------------------------------------------------------------------------
    def _read(self, idx: np.ndarray) -> np.ndarray:
        """Images at ``idx`` (any order) using contiguous reads only."""
        sorted_idx = np.sort(idx)
        with self._lock:
            if self._file is None:
                self._file = h5py.File(self.split.path, "r")
            dataset = self._file["images"]
            data = np.concatenate([dataset[a:b] for a, b in _runs(sorted_idx)])
        return data[np.searchsorted(sorted_idx, idx)]

    def _batch_images(self, index: int) -> np.ndarray:
        lo = index * self.batch_size
        idx = self._order[lo:lo + self.batch_size]
        if self._images is not None:
            return self._images[idx]
        if not self.training:
            return self._read(idx)
        w = lo // self._window
        with self._lock:
            window = self._windows.get(w)
        if window is None:
            window = self._read(self._order[w * self._window:(w + 1) * self._window])
            with self._lock:
                self._windows = {k: v for k, v in self._windows.items() if k >= w - 1}
                self._windows[w] = window
        offset = lo - w * self._window
        return window[offset:offset + self.batch_size]

    def batch_indices(self, index: int) -> np.ndarray:
        """Row numbers in the file of batch ``index`` in the current epoch."""
        lo = index * self.batch_size
        return self._order[lo:lo + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
        images = self._batch_images(index)
        labels = self.split.labels[self.batch_indices(index)].astype(np.int32, copy=False)
        if self.one_hot:
            labels = np.eye(self.one_hot, dtype=np.float32)[labels]
        if not self.training:
            return self.preprocessor(images), labels
        rng = np.random.default_rng([self.seed, self.epoch, index])
        images = self.preprocessor.crop_batch(images, rng)
        if self.augment is not None:
            images = self.augment(images.astype(np.float32), self.epoch, index)
            images, labels = self.augment.mix(images, labels, self.epoch, index)
        return self.preprocessor.normalise(images), labels

    def signature(self) -> list[tuple[str, tuple[int | None, ...]]]:
        """dtype and shape (batch dimension ``None``) of each array a batch holds."""
        shape = self.preprocessor.output_shape(self.split.shape[1:])
        labels = ("float32", (None, self.one_hot)) if self.one_hot else ("int32", (None,))
        return [("float32", (None, *shape)), labels]

    def close(self) -> None:
        """Close the HDF5 handle used for streaming."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def fit_data(loader: HDF5Loader, first_epoch: int, epochs: int):
    """What to hand ``model.fit`` for a training loader, and its ``steps_per_epoch``.

    On the TensorFlow backend this is a ``tf.data`` pipeline over global step indices
    (``first_epoch * len`` to ``epochs * len``) that calls :meth:`HDF5Loader.batch_at` and
    prefetches. Keras feeds a ``PyDataset`` through ``from_generator``, which cost about 40% of
    the throughput of a small model here (``bench/loader.py``). Other backends get the
    ``PyDataset`` itself.
    """
    loader.set_epoch(first_epoch)
    if keras.backend.backend() != "tensorflow":
        return loader, None
    steps = range(first_epoch * len(loader), epochs * len(loader))
    return tf_pipeline(loader, steps, loader.batch_at), len(loader)


def eval_data(loader: HDF5Loader):
    """What to hand ``model.fit(validation_data=...)``/``predict`` for an evaluation loader."""
    if keras.backend.backend() != "tensorflow":
        return loader
    return tf_pipeline(loader, range(len(loader)), loader.__getitem__)


def tf_pipeline(loader: HDF5Loader, steps: range, fetch):
    import tensorflow as tf

    types, shapes = zip(*loader.signature(), strict=True)
    types = [tf.as_dtype(t) for t in types]

    def call(step):
        arrays = tf.numpy_function(fetch, [step], types)
        return tuple(tf.ensure_shape(a, s) for a, s in zip(arrays, shapes, strict=True))

    dataset = tf.data.Dataset.range(steps.start, steps.stop)
    # One call at a time keeps batches in order and the loader's epoch state simple;
    # prefetching overlaps it with the model.
    return dataset.map(call, num_parallel_calls=1, deterministic=True).prefetch(tf.data.AUTOTUNE)
