"""Stage `gan_score`: classify generated samples to measure the GAN's quality and coverage."""

from __future__ import annotations

from pathlib import Path

import click

from stages.common import Stage, fail, folder_option, hdf5_option, load_or_exit, params_option, quiet_backend


@click.command(name="gan_score", cls=Stage)
@params_option
@hdf5_option
@folder_option("--generator", "models/dcgan", dest="generator_dir", exists=True,
               help="Folder written by the dcgan stage.")
@folder_option("--out", "results/gan_score", "Folder for metrics.json, histogram.csv and samples.png.")
def cli(params_path: Path, data: Path, generator_dir: Path, out: Path) -> None:
    """Classify ``gan_score.samples`` generated images with ``gan_score.classifier``.

    Reports the mean confidence, the classes hit and the entropy (bits) of the predicted-class
    histogram, next to the same numbers for the real images of ``gan_score.real_split``: a GAN
    that covers every class evenly with recognisable images comes close to the real row; mode
    collapse shows as few classes and low entropy. The class count and the entropy's maximum
    (log2 of it) are written once, for both rows; the histograms go to histogram.csv.
    """
    from pipeline.generative.generator_file import generator_path

    params = load_or_exit(params_path)
    gs = params.gan_score
    generator_path(generator_dir)  # a missing generator exits 2 before Keras loads
    classifier = Path(gs.classifier)
    if not (classifier / "model.keras").is_file():
        fail(f"gan_score.classifier: no model.keras in {classifier}", 2)
    quiet_backend()
    from pipeline.generative.gan_score import labelled_grid, score
    from pipeline.io.atomic import write_json
    from pipeline.io.tables import write_csv

    real = None if gs.real_split == "none" else data / f"{gs.real_split}.h5"
    result, images, probabilities = score(generator_dir, classifier, gs.samples, params.base.seed,
                                          gs.batch_size, gs.min_share, real)
    generated = result["generated"]
    classes = list(generated["histogram"])
    labelled_grid(images, probabilities, classes, out / "samples.png")
    reference = result.get("real", {}).get("histogram", {})
    write_csv(out / "histogram.csv", ["class", "generated", "real"], [
        {"class": c, "generated": generated["histogram"][c], "real": reference.get(c, "")}
        for c in classes])
    shared = ("classes", "max_entropy_bits")
    write_json(out / "metrics.json", {
        **{k: generated[k] for k in shared},
        **{key: {k: v for k, v in part.items() if k != "histogram" and k not in shared}
           for key, part in result.items()}})
    line = (f"gan_score: {generated['images']} samples, mean confidence "
            f"{generated['mean_confidence']:.3f}, {generated['classes_hit']}/{generated['classes']} "
            f"classes, entropy {generated['entropy_bits']:.3f} of {generated['max_entropy_bits']:.3f} "
            "bits")
    if "real" in result:
        line += (f" (real {result['real']['split']}: {result['real']['mean_confidence']:.3f}, "
                 f"{result['real']['entropy_bits']:.3f} bits)")
    click.echo(line)


if __name__ == "__main__":
    cli()
