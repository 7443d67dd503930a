"""Example radlabel plugin: Otsu threshold in a box, region growing from a point."""

from radlabel_example_threshold.plugin import ExampleThresholdPlugin, create, otsu_threshold

__all__ = ["ExampleThresholdPlugin", "create", "otsu_threshold"]
