"""Stage `finetune`: a new head on a pretrained backbone, warmed up frozen, then unfrozen."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import load_or_exit, quiet_backend, training_stage


@training_stage("finetune", ("models/finetune", "results/finetune", "models/finetune_checkpoint"))
def cli(params_path: Path, data: Path, out: Path, live_dir: Path, checkpoint_dir: Path) -> None:
    """Fine-tune ``backbone.name`` with a new head (``finetune.head``).

    Phase 1 (``finetune.warmup``, RMSprop by default) trains the head with the backbone frozen.
    Phase 2 (``finetune.unfreeze``, SGD at a low rate) also trains the backbone from
    ``unfreeze_from`` (a layer name) or its last ``unfreeze_last`` layers; BatchNorm layers stay
    frozen in inference mode. Both phases log one continuous dvclive history; a killed run
    resumes from its last finished epoch in either phase.
    """
    params = load_or_exit(params_path, inputs=("backbone.weights",))
    quiet_backend()
    from pipeline.transfer.finetune import finetune

    finetune(params, data, out, live_dir, checkpoint_dir)
    click.echo(f"finetune: saved {out / 'model.keras'}")


if __name__ == "__main__":
    cli()
