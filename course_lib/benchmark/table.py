"""The benchmark chapter's table: records in, rows and HTML out.

Introduced in: Benchmark.
"""

from __future__ import annotations

import math

from .protocol import BENCHMARKED


BOUND_LABELS = {"iwae": "IWAE", "iwae_conditional": "IWAE of p(x|y)", "vq_prior": "D + code NLL"}
DATA_LABELS = {"dynamic_mnist": "binarized MNIST", "mnist": "MNIST, grey levels", "fashion_mnist": "Fashion-MNIST",
               "dsprites": "dSprites, 32 x 32"}


def table_rows(records: dict[str, dict]) -> list[dict]:
    """One row per benchmarked record: its training cost beside its benchmark numbers (introduced in: Benchmark).

    A VQ-VAE row adds its PixelCNN prior's parameters and training time (both are needed to sample).
    """
    rows = []
    for name, rec in records.items():
        b, entry = rec.get("benchmark"), BENCHMARKED.get(name)
        if b is None or entry is None:
            continue
        prior = records.get(entry.prior) if entry.prior else None
        extra = (lambda key: prior[key] if prior else 0)
        units = (f"perplexity {b['perplexity']:.0f}" if "perplexity" in b else
                 f"{b['active_units']}/{b['latent_units']}" if "active_units" in b else "")
        rows.append({"model": name, "family": b["family"], "data": DATA_LABELS.get(b["data"], b["data"]),
                     "parameters": rec["parameters"] + extra("parameters"), "epochs": rec["epochs"],
                     "wall_time_s": rec["wall_time_s"] + extra("wall_time_s"), "device": rec["device_name"],
                     "bound": b.get("bound", ""), "bound_label": BOUND_LABELS.get(b.get("bound", "")),
                     "k": b["protocol"]["k"], "n": b["protocol"]["n"],
                     **{key: b.get(key) for key in ("nll", "nll_stderr", "neg_elbo", "rate", "distortion", "fld",
                                                      "train_images_per_s")},
                     "units": units})
    return rows


def html_table(rows: list[dict], columns: dict[str, str], formats: dict[str, str] | None = None) -> str:
    """An HTML table of ``rows`` with ``columns`` {key: header}; missing values show as a dash (introduced in: Benchmark)."""
    import html

    formats = formats or {}

    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "&ndash;"
        return html.escape(format(value, formats.get(key, "")) if key in formats else str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in columns.values())
    body = "".join("<tr>" + "".join(f"<td>{cell(r, k)}</td>" for k in columns) + "</tr>" for r in rows)
    return (f'<div style="overflow-x:auto"><table class="benchmark-table" style="font-size:0.8em;white-space:nowrap;'
            f'border-collapse:separate;border-spacing:0.9em 0.15em">'
            f'<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
