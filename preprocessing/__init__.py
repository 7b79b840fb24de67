"""Dataset readers, person crops, the CPU part-label renderer and the synthetic data generator.

May import numpy, OpenCV/PIL, pycocotools, scipy and ``pare_model``; never ray or mlflow.
"""
