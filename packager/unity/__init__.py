"""The Unity package: .meta files with stable GUIDs."""
