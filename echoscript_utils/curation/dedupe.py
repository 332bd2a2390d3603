"""Duplicates among the kept inputs: identical bytes, and the same audio re-encoded, resampled or at another gain
(fingerprint signatures screened by block matrix products, then a lag-searched correlation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import features as feat


def _dedupe(results: list[dict[str, Any]], *, threshold: float, screen: float = 0.9) -> None:
    """Mark later copies of an earlier kept input (path order) as duplicates, in place.

    Identical bytes → ``duplicate``. Otherwise inputs of about the same duration (within 2 % or 1 s) are screened
    by the dot products of their fingerprint signatures (block matrix products, so thousands of inputs stay
    cheap), and only pairs above ``screen`` get the full lag-searched correlation; at or above ``threshold`` the
    later input is a ``near-duplicate`` of the earlier one.
    """
    kept = sorted((r for r in results if r["status"] == "kept"), key=lambda r: r["source"])
    by_sha: dict[str, str] = {}
    uniq: list[dict[str, Any]] = []
    for r in kept:
        first = by_sha.get(r["sha256"])
        if first is not None:
            r.update(status="skipped", kind="duplicate", reason=f"duplicate: same bytes as {first}")
        else:
            by_sha[r["sha256"]] = r["source"]
            uniq.append(r)
    if len(uniq) < 2:
        return

    def load(r) -> np.ndarray:
        return np.load(r["fingerprint"]).astype(np.float32) if r.get("fingerprint") else np.zeros((0, 13), np.float32)

    sigs = np.stack([feat.fingerprint_signature(load(r)) for r in uniq])
    dur = np.array([float(r["source_info"]["duration_s"]) for r in uniq])
    tol = np.maximum(1.0, 0.02 * dur)
    candidates: dict[int, list[tuple[float, int]]] = {}
    idx = np.arange(len(uniq))
    for s0 in range(0, len(uniq), 512):
        rows = slice(s0, s0 + 512)
        sim = sigs[rows] @ sigs.T
        close = np.abs(dur[rows, None] - dur[None, :]) <= np.maximum(tol[rows, None], tol[None, :])
        earlier = idx[None, :] < idx[rows, None]
        for a, b in np.argwhere((sim >= screen) & close & earlier):
            candidates.setdefault(s0 + int(a), []).append((-float(sim[a, b]), int(b)))
    for j in sorted(candidates):
        fp = load(uniq[j])
        for _, i in sorted(candidates[j]):
            if uniq[i]["status"] != "kept":
                continue
            sim = feat.fingerprint_similarity(fp, load(uniq[i]))
            if sim >= threshold:
                uniq[j].update(status="skipped", kind="near-duplicate",
                               reason=f"near-duplicate: same audio as {uniq[i]['source']} "
                                      f"(fingerprint similarity {sim:.3f})")
                break
