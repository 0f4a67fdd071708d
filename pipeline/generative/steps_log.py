"""Per-step logs of an optimisation over pixels (DeepDream, style transfer), through dvclive.

Each loss goes to ``plots/metrics/<name>.tsv`` (a DVC plot, one point per step), images to
``plots/images/<tag>/step_NNNN.png`` (DVC image plots) every few steps, and the summary to
``metrics.json``. A run starts its log afresh: these stages do not resume.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np


class StepLog:
    """A fresh dvclive log in ``live_dir``; call :meth:`step` once per optimisation step."""

    def __init__(self, live_dir: Path):
        from dvclive import Live

        shutil.rmtree(Path(live_dir) / "plots", ignore_errors=True)
        self.live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None)
        self.images = 0

    def step(self, losses: dict[str, float], image: np.ndarray | None = None,
             tag: str = "steps") -> None:
        """Log ``losses`` at this step (and ``image``, uint8, under ``tag``), then advance."""
        for name, value in losses.items():
            self.live.log_metric(name, float(value), plot=True)
        if image is not None:
            self.live.log_image(f"{tag}/step_{self.live.step:04d}.png", image)
            self.images += 1
        self.live.next_step()

    def close(self, summary: dict[str, Any]) -> None:
        """Replace dvclive's summary with ``summary`` (headline numbers) and close the log."""
        self.live.summary = dict(summary)
        self.live.make_summary()
        self.live.end()
