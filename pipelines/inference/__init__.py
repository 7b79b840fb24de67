"""Inference on images: find people, crop them, run the model, write results and overlays."""
