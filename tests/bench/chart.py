"""``chart.png``: handshakes/s per scenario and peer, the latency of accepted handshakes, and the
production profile's ratios (Redis ÷ local memory, 2 workers ÷ 1) when the run has them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from .peers import PEERS_BY_KEY
from .scenarios import SCENARIOS_BY_KEY

PRODUCTION_RATIOS = (
    ("redis_vs_local_memory_uvicorn", "Redis ÷ local memory, uvicorn"),
    ("redis_vs_local_memory_daphne", "Redis ÷ local memory, Daphne+wsreject"),
    ("redis_2_workers_vs_1", "2 uvicorn workers ÷ 1 (Redis)"),
    ("redis_daphne_2_processes_vs_1", "2 Daphne+wsreject processes ÷ 1 (Redis)"),
)


RATIO_CAP = 2.0  # bars above are cut there and labelled with their value


def production_ratios(results: dict[str, Any]) -> list[tuple[str, dict[str, float | None]]]:
    """The production profile's ratios that this run measured, as (label, {scenario: ratio})."""
    ratios = results.get("ratios", {})
    found = []
    for key, label in PRODUCTION_RATIOS:
        values = ratios.get(key, {})
        if any(v is not None for v in values.values()):
            found.append((label, values))
    return found


def draw(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers, scenarios = results["parameters"]["peers"], results["parameters"]["scenarios"]
    cells = {(c["peer"], c["scenario"]): c for c in results["cells"]}
    accepted = [s for s in scenarios if SCENARIOS_BY_KEY[s].accepted]
    palette = plt.get_cmap("tab10")
    colors = [palette(i) for i in range(10)]

    production = production_ratios(results)
    if production:
        fig, (top, bottom, third) = plt.subplots(3, 1, figsize=(12, 13), gridspec_kw={"height_ratios": [3, 2, 2]})
    else:
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

    if production:
        denials = [s for s in scenarios if not SCENARIOS_BY_KEY[s].accepted]
        width = 0.8 / len(production)
        for i, (label, values) in enumerate(production):
            xs = [j + (i - (len(production) - 1) / 2) * width for j in range(len(denials))]
            ys = [values.get(s) or 0 for s in denials]
            third.bar(xs, [min(y, RATIO_CAP) for y in ys], width, label=label, color=colors[i % 10])
            for x, y in zip(xs, ys):
                if y > RATIO_CAP:  # an outlier (a stalled cell) would flatten every other bar
                    third.text(x, RATIO_CAP * 0.97, f"{y:.1f}", ha="center", va="top", fontsize=7, rotation=90)
        third.axhline(1.0, color="grey", linewidth=0.8)
        third.axhline(0.9, color="grey", linewidth=0.8, linestyle=":")
        third.set_xticks(range(len(denials)), [SCENARIOS_BY_KEY[s].label for s in denials], fontsize=8)
        third.set_ylim(0, RATIO_CAP * 1.25)  # room for the legend
        third.set_ylabel("rate ratio")
        third.set_title("Production profile: Redis ÷ local memory, and 2 workers ÷ 1 (same run; dotted: 0.9)")
        third.legend(fontsize=8, ncol=2)
        third.grid(axis="y", alpha=0.3)

    footer = textwrap.fill(f"{results['started']}: {results['label']}", 200)
    fig.text(0.01, 0.005, footer, fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.015 * (1 + footer.count(chr(10))), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
