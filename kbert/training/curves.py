"""The training-curve PNG every training run leaves in its model directory.

Loss on the left axis, accuracy-like metrics (evaluation and training) on the
right, against epochs (fine-tuning) or steps (pre-training). Drawn with
matplotlib's Agg canvas directly, without pyplot, so no display and no global
backend switch are needed (a server, a notebook and a test all behave alike).
"""

import math
import os
import sys

CURVE_FILE = "training_curve.png"


def write_training_curve(path, x, losses, metrics=None, *, x_label="epoch", title=None, best=None):
    """Write a training-curve PNG (atomically).

    Args:
        path: the PNG to write.
        x: the x value of each point (epochs or steps).
        losses: `{name: [value per x]}` drawn on the left axis.
        metrics: `{name: [value per x]}` drawn on the right axis (eval and
            training metrics). `None` or NaN values are left out.
        x_label: the x axis title.
        title: the figure title.
        best: an x value to mark (the epoch that was kept).

    Returns:
        `path`.

    Examples:
    ```python
    write_training_curve("runs/sst2/training_curve.png", [1, 2, 3], {"loss": [0.6, 0.4, 0.3]},
                         {"eval accuracy": [0.81, 0.86, 0.85]}, best=2)
    ```
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kbert.io import atomic_file

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    left = figure.add_subplot(1, 1, 1)
    lines = []
    for name, values in losses.items():
        lines += left.plot(*_points(x, values), marker="o", markersize=3, label=name)
    left.set_xlabel(x_label)
    left.set_ylabel("loss")
    left.grid(True, alpha=0.3)
    if metrics:
        right = left.twinx()
        styles = iter(["s--", "^--", "v--", "D--", "x--", "*--"])
        colors = iter(f"C{i}" for i in range(len(losses), len(losses) + len(metrics)))
        for name, values in metrics.items():
            lines += right.plot(*_points(x, values), next(styles, "o--"), color=next(colors), markersize=4,
                                label=name)
        right.set_ylabel("metric")
    if best is not None:
        lines.append(left.axvline(best, color="grey", linestyle=":", label=f"kept ({x_label} {best})"))
    if lines:
        left.legend(lines, [line.get_label() for line in lines], loc="best", fontsize="small")
    if title:
        left.set_title(title)
    figure.tight_layout()
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    return os.fspath(path)


def save_training_curve(model_dir, *args, **kwargs):
    """`write_training_curve` into `<model_dir>/training_curve.png`.

    A missing matplotlib costs the picture, not the trained model: a notice
    on stderr and `None`.
    """
    path = os.path.join(os.fspath(model_dir), CURVE_FILE)
    try:
        return write_training_curve(path, *args, **kwargs)
    except ImportError as e:
        print(f"no {CURVE_FILE}: {e} (pip install matplotlib)", file=sys.stderr)
        return None


def _points(x, values):
    kept = [(a, float(v)) for a, v in zip(x, values) if v is not None and not math.isnan(float(v))]
    return [a for a, _ in kept], [v for _, v in kept]
