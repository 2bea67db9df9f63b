"""The soak's samples on disk: ``<stem>.csv``, ``<stem>.json`` and ``<stem>.png`` (RSS per node over time).

The PNG needs matplotlib (in the ``test`` extras); without it the CSV and JSON
are still written and the plot is skipped with a message.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.soak_sample import Sample

MIB = 1024 * 1024


def write_samples(stem: Path, samples: Sequence[Sample], meta: dict[str, Any]) -> list[Path]:
    """Write the samples as CSV and JSON (with `meta`), and the RSS plot; the paths written."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    rows = [s.to_json() for s in samples]
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["t"])
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps({"meta": meta, "samples": rows}, indent=1) + "\n")
    written = [csv_path, json_path]
    png = plot_rss(stem.with_suffix(".png"), samples, meta)
    if png is not None:
        written.append(png)
    return written


def plot_rss(path: Path, samples: Sequence[Sample], meta: dict[str, Any]) -> Path | None:
    """RSS (node + DNS workers) per node over time, the phases shaded; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax, ax_db) = plt.subplots(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    nodes: dict[int, list[Sample]] = {}
    for s in samples:
        nodes.setdefault(s.node, []).append(s)
    for index, series in sorted(nodes.items()):
        label = f"validator {index}" if index < meta.get("validators", 4) else f"follower {index}"
        ts = [s.t / 60 for s in series]
        ax.plot(ts, [s.rss_bytes / MIB for s in series], marker=".", label=label)
        ax_db.plot(ts, [s.db_bytes / MIB for s in series], label=label)
    for (start, end), name, shade in (
        (meta.get("warm_up_s", (0.0, 0.0)), "warm-up", "#f2f2f2"),
        (meta["phase1_s"], "registrations + updates", "#eef3ff"),
        (meta["phase2_s"], "updates only", "#fff3e6"),
    ):
        for axis in (ax, ax_db):
            axis.axvspan(start / 60, end / 60, color=shade, zorder=0)
        ax.text((start + end) / 120, 0.02, name, transform=ax.get_xaxis_transform(),
                ha="center", fontsize=8, color="#555")  # fmt: skip
    ax.set_ylabel("RSS, node + DNS workers (MiB)")
    ax.set_title(meta.get("title", "soak"), fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax_db.set_ylabel("LevelDB dir (MiB)")
    ax_db.set_xlabel("minutes since the load started")
    ax_db.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
