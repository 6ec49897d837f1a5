"""Build stages, in order per graph: export (torch -> ONNX) -> convert (a precision policy's variant) -> check (the
goldens reproduced) -> golden (case tensors written) -> package (graph files and manifest entries). A component's
``build`` loads the weights before them. None knows a component by name."""
