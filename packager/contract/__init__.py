"""The bundle contract shared by every layer: the manifest and its schema, bundle files and arrays, tolerances and
thresholds, targets, errors, staged output."""
