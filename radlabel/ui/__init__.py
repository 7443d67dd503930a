"""Qt + VTK desktop user interface."""
