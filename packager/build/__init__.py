"""The build: checkpoint or preset in, verified bundle out (pipeline, the component interface and registry,
precision policies, stages)."""
