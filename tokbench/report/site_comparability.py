"""Whether a reported source is comparable with a reproduced protocol, as the site says it."""

from __future__ import annotations

from tokbench.comparability import UNKNOWN, fact_summary, protocol_mismatches
from tokbench.report.site_html import esc, protocol_label

COMPARABILITY_NOTE = (
    '<p class="muted">A reported source is <b>comparable</b> with a reproduced protocol when it states '
    "every fact the two can be compared on (Inception resize, dataset, image count, preprocessing, "
    "quantisation, and where they apply perturbation, save step, bucket edges, judges) and each equals "
    "the reproduced protocol's; a fact the source does not state never matches. The facts and where "
    "they were established are on each record's page.</p>"
)


def compare_reported(reported: dict, reproduced: list[dict]) -> tuple[list[dict], list[str]]:
    """The reproduced protocols (one record each) ``reported`` is comparable with, and why it is not
    comparable with each of the others."""
    matches, reasons = [], []
    for record in reproduced:
        mismatches = protocol_mismatches(reported, record)
        if mismatches:
            reasons.append(f"{protocol_label(record)}: {'; '.join(mismatches)}")
        else:
            matches.append(record)
    if not reproduced:
        reasons.append(f"no reproduced protocol measures {reported['suite']['name']} in this store")
        unstated = [key for key, value in reported["protocol"].get("facts", {}).items() if value == UNKNOWN]
        if unstated:
            reasons.append(f"the source does not state: {', '.join(unstated)}")
    return matches, reasons


def comparability_text(reported: dict, matches: list[dict], reasons: list[str]) -> str:
    """``comparable with: recon v3 · b2b430055867 (tf1-bilinear, imagenet-1k-val, 50000 images)``, or
    ``not comparable with any reproduced protocol here (reasons)``."""
    if matches:
        summary = fact_summary(reported["protocol"].get("facts", {}))
        return "comparable with: " + ", ".join(f"{protocol_label(r)} ({summary})" for r in matches)
    return f"not comparable with any reproduced protocol here ({' | '.join(reasons)})"


def comparability_html(reported: dict, matches: list[dict], reasons: list[str]) -> str:
    """``comparability_text`` as escaped HTML, one list item per reason."""
    if matches:
        return esc(comparability_text(reported, matches, reasons))
    items = "".join(f"<li>{esc(reason)}</li>" for reason in reasons)
    return f"not comparable with any reproduced protocol here:<ul>{items}</ul>"
