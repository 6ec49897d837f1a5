"""Pipeline stages: load -> export -> convert -> check -> golden -> package. None knows a component by name."""
