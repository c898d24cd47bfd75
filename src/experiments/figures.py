"""The picture logged at the end of a run. matplotlib is imported here only, when needed."""

import torch


def fit_figure(features: torch.Tensor, targets: torch.Tensor, predictions: torch.Tensor,
               feature_names: list[str], target_names: list[str]):
    """Tutorial 003's plot for 1-D data (the points and the fitted line); otherwise one panel
    per target of predicted against actual values, where a perfect model lies on the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    features, targets, predictions = (t.detach().cpu().double() for t in (features, targets, predictions))
    if features.shape[1] == 1 and targets.shape[1] == 1:
        fig = Figure(figsize=(5, 4), layout="tight")
        ax = fig.subplots()
        order = features[:, 0].argsort()
        ax.plot(features[:, 0], targets[:, 0], "bo", label="data")
        ax.plot(features[order, 0], predictions[order, 0], "r-", label="model")
        ax.set(xlabel=feature_names[0], ylabel=target_names[0], title="Fitted line")
        ax.legend()
        return fig
    fig = Figure(figsize=(4 * len(target_names), 4), layout="tight")
    for ax, name, actual, predicted in zip(fig.subplots(1, len(target_names), squeeze=False)[0],
                                          target_names, targets.T, predictions.T):
        low, high = min(actual.min(), predicted.min()).item(), max(actual.max(), predicted.max()).item()
        ax.plot([low, high], [low, high], "k--", linewidth=1, label="perfect")
        ax.plot(actual, predicted, "o", label="model")
        ax.set(xlabel=f"actual {name}", ylabel=f"predicted {name}", title=name)
        ax.legend()
    return fig
