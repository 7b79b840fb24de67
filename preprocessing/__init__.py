"""Dataset readers, person crops, the CPU part-label renderer, the synthetic data generator and the
training-time augmentation (:mod:`preprocessing.augment`).

May import numpy, OpenCV/PIL, albumentations, pycocotools, scipy and ``pare_model``; never ray or mlflow.
"""
