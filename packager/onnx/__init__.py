"""ONNX files: I/O with clear errors, external data and streamed writing, fp16 rounding, graph rewrites, sessions."""
