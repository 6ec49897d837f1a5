"""The build: checkpoint or preset in, verified bundle out (pipeline, the component interface and registry,
precision policies, stages)."""
from pathlib import Path

DEFAULT_OUT = Path("build/cosyvoice3-bundle")  # where `build` writes without --out (relative to the working folder)
