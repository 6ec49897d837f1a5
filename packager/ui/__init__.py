"""What a person sees while a verb runs: progress lines and bars, messages for missing optional dependencies."""
