"""``pare export``: a trained or released checkpoint as a TorchScript or ONNX file, checked against eager PyTorch."""
