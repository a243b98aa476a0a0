"""One-line definitions of the metrics that runs record, for reports and docs to quote.

Keys are the last part of a metric's dotted name (``last.group_acc.few`` -> ``few``); what the first
part adds (``last``, ``best``, ``analysis``) and a ``fine_`` prefix are in :data:`METRIC_SOURCES` and
:data:`FINE_PREFIX`. Accuracies are in percent; ``t = 2`` and ``k = min(5, C - 1)`` are the defaults
``ammix analyze`` uses (:func:`ammix.analysis.collapse_report`).
"""

from __future__ import annotations

METRIC_DEFINITIONS: dict[str, str] = {
    # summary.json (ammix.engine.evaluate), accuracies in percent
    "acc": "top-1 accuracy on the test set (%)",
    "balanced_acc": "balanced accuracy: mean over classes of the per-class test accuracy (%)",
    "per_class_acc": "test accuracy of each class (%)",
    "many": "mean test accuracy of the many-shot classes, more than 100 training images (%)",
    "medium": "mean test accuracy of the medium-shot classes, 20 to 100 training images (%)",
    "few": "mean test accuracy of the few-shot classes, fewer than 20 training images (%)",
    "epoch": "the epoch of that evaluation",
    "wall_time_s": "wall-clock time of the training in seconds, summed over resumed sessions",
    # analysis.json (ammix.analysis.collapse_report) on the test features f of the last checkpoint
    "accuracy": "top-1 accuracy on the test set (%)",
    "balanced_accuracy": "balanced accuracy: mean over classes of the per-class test accuracy (%)",
    "feature_norm": "mean L2 norm of the test features (the feature scale)",
    "alignment": "mean ||f_i - f_j||^2 over same-class pairs of L2-normalised test features "
                 "(Wang & Isola 2020; in [0, 4], lower = tighter classes)",
    "uniformity": "log mean over all pairs of exp(-2 ||f_i - f_j||^2), L2-normalised test features "
                  "(Wang & Isola 2020; in [-8, 0], lower = spread more evenly on the sphere)",
    "neighbour_uniformity": "uniformity of the class centroids (normalised means of the normalised "
                            "features) over each centroid's k = min(5, C - 1) nearest other centroids "
                            "(in [-8, 0], higher = classes crowd their neighbours: inter-class collapse)",
    "intra_spread": "mean over classes of the mean squared distance of a class's features to its "
                    "centroid (raw features, grows with their norm)",
    "intra_spread_normalized": "intra_spread of the L2-normalised features (in [0, 1], 0 = each class "
                               "collapsed to a point)",
    "min_centroid_distance": "smallest Euclidean distance between two class centroids (raw features)",
    "mean_centroid_distance": "mean Euclidean distance between two class centroids (raw features)",
    "margin_min": "smallest class margin: the signed distance of a class's raw feature centroid to the "
                  "nearest decision boundary of the linear head (negative: the centroid is misclassified)",
    "margin_mean": "mean over classes of the class margins (see margin_min)",
    "margin_std": "population std (ddof=0) over classes of the class margins (see margin_min); "
                  "lower = more even margins",
    "margin_ratio": "smallest / largest class margin (see margin_min); 1 = all equal, negative when "
                    "some centroid is misclassified, undefined (nan) when every one is; higher = more "
                    "even relative to the largest margin (1 - ratio = the margins' range / the "
                    "largest), not to the feature scale",
    "midpoint_third_class": "share of inter-class test pairs whose feature midpoint the head assigns to a "
                            "third class (AM-mixup's single-side labels there contradict the head)",
    # metrics.jsonl (ammix.experiments.curves)
    "tail_range": "max - min of the balanced test accuracy over the evaluations in the last 20% of the "
                  "epochs (points); below 1: flat over its end, which under a cosine schedule mostly "
                  "measures the annealing of the learning rate: convergence is decided by the length "
                  "check (the run at twice the epochs)",
    "tail_drift": "mean of the last 10 balanced test accuracies evaluated in the last 20% of the epochs "
                  "minus the mean of its first 10 (of its two halves with fewer than 20; points): "
                  "positive while the run still climbs over its end, near 0 when flat",
    "grad_max": "largest absolute entry of the gradient of the L-BFGS probe's objective where the fit "
                "stopped; at most 1e-05 (ammix.engine.probe.GRAD_TOLERANCE): the probe converged",
    "iterations": "L-BFGS iterations of the probe's fit",
    "ece": "expected calibration error: over 15 equal-width bins of the max softmax probability, the sum "
           "of |accuracy - mean confidence| weighted by the bin's share of test images (in [0, 1])",
}

#: What the first part of a dotted metric name says about where the value comes from.
METRIC_SOURCES: dict[str, str] = {
    "last": "summary.json, last evaluation",
    "best": "summary.json, the evaluation with the best train.best_metric, chosen on the test split "
            "itself (optimistic: not a held-out number)",
    "analysis": "analysis.json, the last checkpoint",
    "curve": "metrics.jsonl, the learning curve",
    "probe": "metrics.jsonl, the fit of the L-BFGS probe (train.probe: lbfgs)",
}

#: An ``analysis.fine_<key>`` metric: ``<key>`` against the fine labels, for a run trained on coarse ones.
FINE_PREFIX = "fine_"


def metric_definition(key: str) -> str | None:
    """The definition of a dotted metric name (``last.group_acc.few``), with where it comes from;
    ``None`` for a metric without one."""
    parts = key.split(".")
    leaf = parts[-1]
    fine = leaf.startswith(FINE_PREFIX) and leaf[len(FINE_PREFIX):] in METRIC_DEFINITIONS
    text = METRIC_DEFINITIONS.get(leaf[len(FINE_PREFIX):] if fine else leaf)
    if text is None:
        return None
    if fine:
        text += "; against the fine labels of a run trained on the coarse ones"
    source = METRIC_SOURCES.get(parts[0]) if len(parts) > 1 else None
    return f"{text}; {source}" if source else text
