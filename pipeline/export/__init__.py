"""Shipping a trained model: exports to ONNX, SavedModel and LiteRT, and their parity.

``baking`` puts the model's preprocessing into the graph, so an export takes decoded uint8 images
as they are stored; ``formats`` writes each format with Keras's own ``model.export`` and an
``export.json`` manifest beside it; ``runtimes`` runs an export with its own runtime
(onnxruntime, ``tf.saved_model.load``, the LiteRT interpreter; the ONNX one imports neither
TensorFlow nor Keras); ``parity`` scores each export against the Keras model and fails when
they disagree.
"""
