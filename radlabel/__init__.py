"""radlabel: an annotation workstation for radiologists."""

__version__ = "0.1.0"
