"""Stage `extract_features`: run every split through a pretrained backbone into a features HDF5."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, fail, folder_option, hdf5_option, load_or_exit, params_option, quiet_backend


@click.command(name="extract_features", cls=Stage)
@params_option
@hdf5_option
@folder_option("--out", "data/features", "Folder for <split>.h5 feature files.")
def cli(params_path: Path, data: Path, out: Path) -> None:
    """Write ``<split>.h5`` with ``features`` (N, D), ``labels``, ``paths`` and class names.

    The backbone is ``backbone.name`` from ``keras.applications`` without its top, with
    ``backbone.weights`` (imagenet from the local cache only, a file path, or none), fed
    ``backbone.image_size`` RGB images through its own ``preprocess_input``; the last layer's
    (or ``extract_features.layer``'s) activations are pooled by ``extract_features.pooling``.
    Batches stream from HDF5 to HDF5, so memory stays flat.
    """
    params = load_or_exit(params_path, inputs=("backbone.weights",))
    quiet_backend()
    from pipeline.data.split import SPLITS
    from pipeline.models import backbones
    from pipeline.train.lifecycle import configure_backend
    from pipeline.train.preprocess import Preprocessor
    from pipeline.transfer.features import extract, feature_model

    bp, ep = params.backbone, params.extract_features
    configure_backend(params.base.seed, deterministic=True)
    try:
        body = backbones.build(bp.name, bp.weights, tuple(bp.image_size), bp.alpha)
    except backbones.WeightsUnavailable:
        raise  # names backbone.weights and the file: exit 2
    except ValueError as exc:  # Keras refusing the image size or alpha
        fail(f"backbone {bp.name}: {exc}", 2)
    model = feature_model(body, ep.pooling, ep.layer)
    preprocessor = Preprocessor(size=tuple(bp.image_size), rgb=True, backbone=bp.name)
    from pipeline.io.hdf5 import Split

    source_shape = Split(data / "train.h5").shape
    attrs = {"backbone": bp.name, "weights": bp.weights, "size": list(bp.image_size),
             "alpha": bp.alpha, "pooling": ep.pooling, "layer": ep.layer or "", "flip": ep.flip,
             "source_size": list(source_shape[1:3]), "source_channels": source_shape[3]}
    for name in SPLITS:
        source = data / f"{name}.h5"
        if not source.exists():
            continue
        count = extract(model, source, out / f"{name}.h5", preprocessor, ep.batch_size,
                        ep.dtype, ep.flip, attrs)
        click.echo(f"extract_features: {name}: {count} images -> {out / f'{name}.h5'} "
                   f"({model.output_shape[-1]} features)")


if __name__ == "__main__":
    cli()
