"""The PNG figures of `act stats` and `act inspect` (matplotlib with the Agg backend: no display needed). Each is
written through `act.checkpoints.atomic.writing`: a failed or killed run leaves the previous PNG (or none), never a
half-written one."""

from __future__ import annotations

from pathlib import Path

from ..checkpoints import atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """`fig` as a PNG at `path`, crash-safe (`atomic.writing_file`; inside an enclosing `atomic.writing` of a set
    of outputs, `path` is that set's temporary file)."""
    with atomic.writing_file(path) as temporary:
        fig.savefig(temporary, format="png")


def _tag_panel(ax, table: dict, title: str) -> None:
    rows = [(tag, row) for tag, row in table.items() if row["count"]]
    rows.sort(key=lambda item: item[0], reverse=True)
    rows.sort(key=lambda item: item[1]["mean_updates"])  # largest mean at the top; ties alphabetical downwards
    tags = [f"{tag} ({row['count']})" for tag, row in rows]
    means = [row["mean_updates"] for _, row in rows]
    low = [row["mean_updates"] - row["ci95"][0] for _, row in rows]
    high = [row["ci95"][1] - row["mean_updates"] for _, row in rows]
    positions = range(len(rows))
    ax.barh(positions, means, color="#2b6ca3", alpha=0.85)
    ax.errorbar(means, positions, xerr=[low, high], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    ax.set_yticks(list(positions))
    ax.set_yticklabels(tags, fontsize=7)
    ax.set_xlabel("mean updates per word (95% bootstrap interval)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _finish(plt, fig, path: Path, title: str) -> None:
    """Title, layout, written crash-safe (`save_figure`); the figure is closed whatever happens."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)


def write_tag_figure(path: Path, report: dict, title: str) -> None:
    """Mean updates per UPOS and per DEPREL tag, with their intervals, sorted by mean (two panels)."""
    plt = _pyplot()
    n = max(len(report["upos"]), len(report["deprel"]), 1)
    height = max(3.0, 0.2 * n + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(11, height), dpi=110)
    _tag_panel(axes[0], report["upos"], "UPOS (words)")
    _tag_panel(axes[1], report["deprel"], "DEPREL (words)")
    _finish(plt, fig, path, title)


def write_token_figure(path: Path, report: dict, title: str) -> None:
    """Mean updates per token category and the updates histogram; with a "cosine" entry in the report, a third
    panel: mean cosine between consecutive iterations' states per category, by iteration (running tokens)."""
    plt = _pyplot()
    cosine = report.get("cosine")
    fig, axes = plt.subplots(1, 3 if cosine else 2, figsize=(15 if cosine else 10, 4), dpi=110)
    names = [name for name, row in report["categories"].items() if row["count"]]
    means = [report["categories"][name]["mean_updates"] for name in names]
    axes[0].bar(range(len(names)), means, color="#2b6ca3")
    axes[0].set_xticks(range(len(names)))
    axes[0].set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    axes[0].set_ylabel("mean updates")
    axes[0].set_title(f"mean updates per token category ({report.get('category_set', 'ours')})", fontsize=9)
    histogram = report["updates_histogram"]
    axes[1].bar([int(k) for k in histogram], list(histogram.values()), color="#e6863b")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("updates")
    axes[1].set_ylabel("tokens (log scale)")
    axes[1].set_title("updates histogram", fontsize=9)
    if cosine:
        for name, row in cosine["categories"].items():
            points = [(i, c) for i, c in zip(cosine["iterations"], row["mean_cosine"]) if c is not None]
            if points:
                axes[2].plot(*zip(*points), marker="o", markersize=3, linewidth=1, label=name)
        axes[2].set_xlabel("iteration i: cosine(state after i-1, state after i)")
        axes[2].set_ylabel("mean cosine (running tokens)")
        axes[2].set_title("progressive refinement", fontsize=9)
        axes[2].legend(fontsize=7)
    _finish(plt, fig, path, title)
