"""Occluder banks for synthetic occlusion: object cut-outs from Pascal VOC 2012 (``pare occluders build``)."""
