"""Checks that a figure a run logged to MLflow shows data, read from the PNG's pixels."""
import matplotlib.image
from mlflow.tracking import MlflowClient


def coloured_pixels(tracking_uri: str, run_id: str, artifact: str, tmp_path) -> int:
    """Pixels of the logged PNG in a colour of matplotlib's cycle (lines, markers, bars): an empty
    frame has only white, black and grey (axes, ticks, grid, text), so it counts none."""
    path = MlflowClient(tracking_uri).download_artifacts(run_id, artifact, str(tmp_path))
    rgb = matplotlib.image.imread(path)[..., :3]
    return int(((rgb.max(-1) - rgb.min(-1)) > 0.25).sum())


def assert_plot_has_data(tracking_uri: str, run_id: str, tmp_path, artifact: str = "plots/metric_vs_cost.png",
                         min_pixels: int = 300) -> None:
    pixels = coloured_pixels(tracking_uri, run_id, artifact, tmp_path)
    assert pixels >= min_pixels, f"{artifact} of run {run_id} looks blank ({pixels} coloured pixels)"
