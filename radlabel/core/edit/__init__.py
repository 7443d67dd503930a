"""Edit operations on segmentations: tools compute a `Region`, `apply.apply_region` is the one edit path."""
