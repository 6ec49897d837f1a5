"""What Unity Sentis does to a graph: its rules, its numerics (the Sentis view of a bundle), the pre-flight checker."""
