"""``chart.png``: handshakes/s per scenario and peer, and the latency of accepted handshakes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from .peers import PEERS_BY_KEY
from .scenarios import SCENARIOS_BY_KEY


def draw(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers, scenarios = results["parameters"]["peers"], results["parameters"]["scenarios"]
    cells = {(c["peer"], c["scenario"]): c for c in results["cells"]}
    accepted = [s for s in scenarios if SCENARIOS_BY_KEY[s].accepted]
    palette = plt.get_cmap("tab10")
    colors = [palette(i) for i in range(10)]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [3, 2]})
    width = 0.8 / max(1, len(peers))
    for i, peer in enumerate(peers):
        xs, ys = [], []
        for j, scenario in enumerate(scenarios):
            cell = cells.get((peer, scenario))
            if cell:
                xs.append(j + (i - (len(peers) - 1) / 2) * width)
                ys.append(cell["rate"])
        top.bar(xs, ys, width, label=PEERS_BY_KEY[peer].label, color=colors[i % 10])
    top.set_xticks(range(len(scenarios)), [SCENARIOS_BY_KEY[s].label for s in scenarios], fontsize=8)
    top.set_ylim(0, top.get_ylim()[1] * 1.25)  # room for the legend above the bars
    top.set_ylabel("handshakes/s")
    top.set_title("Handshakes per second (server on one core, load generator on another)")
    top.legend(fontsize=8, ncol=3)
    top.grid(axis="y", alpha=0.3)

    for i, peer in enumerate(peers):
        for j, scenario in enumerate(accepted):
            cell = cells.get((peer, scenario))
            if not cell:
                continue
            x = j + (i - (len(peers) - 1) / 2) * width
            lat = cell["result"]["latency_ms"]
            bottom.bar(x, lat.get("p99", 0), width, color=colors[i % 10], alpha=0.35)
            bottom.bar(x, lat.get("p50", 0), width, color=colors[i % 10], label=PEERS_BY_KEY[peer].label if j == 0 else None)
    bottom.set_xticks(range(len(accepted)), [SCENARIOS_BY_KEY[s].label for s in accepted], fontsize=8)
    bottom.set_ylim(0, bottom.get_ylim()[1] * 1.3)
    bottom.set_ylabel("ms")
    bottom.set_title("Accepted handshakes: latency p50 (solid) and p99 (light)")
    bottom.legend(fontsize=8, ncol=3)
    bottom.grid(axis="y", alpha=0.3)

    footer = textwrap.fill(f"{results['started']}: {results['label']}", 200)
    fig.text(0.01, 0.005, footer, fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.015 * (1 + footer.count(chr(10))), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
