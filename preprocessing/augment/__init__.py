"""Training-time augmentation of stored crops, on NumPy arrays (OpenCV and albumentations; no torch):

- :mod:`.crop_geometry`: one random similarity (scale, rotation, shift, flip) applied to the image,
  part labels, 2D keypoints, 3D joints and root orientation together;
- :mod:`.photometric`: PARE's colour gain and motion blur, plus optional extras (albumentations);
- :mod:`.synthetic_occlusion`: object cut-outs (an occluder bank from ``pare occluders build``, or
  procedural shapes) pasted over the image;
- :mod:`.config`: their settings, the ``loader.augment`` and ``loader.occlusion`` config sections.

The training and evaluation loaders (:mod:`pipelines.data`) call these on every sample.
"""
