"""AI plugin SDK, registry, worker process and built-in plugins. No Qt; torch/MONAI imported lazily."""
