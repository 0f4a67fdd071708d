"""Explaining a trained classifier: Grad-CAM heatmaps and their overlays.

``gradcam`` finds the layer (through nested models) and computes the heatmaps with the
backend-agnostic input gradient of :mod:`pipeline.generative.gradients`; ``overlay`` colours
them with a matplotlib colormap over the image; ``explanations`` picks a split's most confident
mistakes and one correct image per class, explains them and writes the explain stage's outputs.
"""
