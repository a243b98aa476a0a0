"""Analysis: collapse metrics on features and predictions, and the feature-map figures.

Metrics (:mod:`ammix.analysis.metrics`) are pure functions of tensors; figures
(:mod:`ammix.analysis.figures`) use matplotlib's object API with the Agg canvas (no pyplot state).
"""

from .definitions import METRIC_DEFINITIONS, metric_definition
from .figures import CAPTION_KEYS, class_colors, feature_map_figure, feature_map_image, plot_feature_map
from .metrics import (
    REPORT_KEYS,
    alignment,
    balanced_accuracy,
    centroid_distances,
    class_centroids,
    class_feature_norms,
    collapse_report,
    expected_calibration_error,
    feature_norms,
    group_accuracy,
    intra_class_spread,
    margin_to_boundary,
    midpoint_third_class_share,
    min_centroid_distance,
    neighbour_uniformity,
    per_class_accuracy,
    uniformity,
)

__all__ = [
    "METRIC_DEFINITIONS",
    "metric_definition",
    "REPORT_KEYS",
    "CAPTION_KEYS",
    "alignment",
    "uniformity",
    "neighbour_uniformity",
    "class_centroids",
    "intra_class_spread",
    "centroid_distances",
    "min_centroid_distance",
    "feature_norms",
    "class_feature_norms",
    "margin_to_boundary",
    "midpoint_third_class_share",
    "expected_calibration_error",
    "per_class_accuracy",
    "balanced_accuracy",
    "group_accuracy",
    "collapse_report",
    "plot_feature_map",
    "feature_map_figure",
    "feature_map_image",
    "class_colors",
]
