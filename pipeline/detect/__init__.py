"""Object detection: annotated images, window datasets, sliding-window detectors, cascades, scores.

``boxes`` holds the shared types and their COCO JSON form; ``annotations`` reads and checks a
user's boxes (CSV, PASCAL VOC, COCO, the UIUC cars); ``scenes`` makes the embedded default;
``windows`` cuts training windows into the usual HDF5 layout; ``geometry`` is the pyramid, the
sliding window and non-maxima suppression; ``classifiers`` wraps any window classifier the
pipeline trains; ``detector`` runs one over images; ``hog_svm`` and ``cascade`` are the classical
detectors; ``scoring`` and ``drawing`` evaluate and show the result.
"""
