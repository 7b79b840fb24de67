"""Occluder banks for synthetic occlusion: object cut-outs from Pascal VOC 2012 (``pare occluders build``).

The bank file format and the pasting are :mod:`preprocessing.augment.synthetic_occlusion`."""
