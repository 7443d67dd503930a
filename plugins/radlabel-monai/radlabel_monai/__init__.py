"""radlabel plugin ``monai_bundle``: runs a MONAI bundle or a TorchScript model with a small JSON config.

Importing this package is cheap; torch and MONAI load only when the plugin's ``load`` runs.
"""

__version__ = "0.1.0"
