"""Obvious pure-Python fusion references (one query; each list is [(doc id, score), ...] in any order)."""

from __future__ import annotations

import statistics


def _ranked(lst):
    # score descending, input order on ties (Python's sort is stable)
    return sorted(lst, key=lambda p: -p[1])


def _order(totals, lists):
    best, first = {}, {}
    for li, lst in enumerate(lists):
        for pos, (d, _) in enumerate(_ranked(lst)):
            best[d] = min(best.get(d, pos), pos)
            first.setdefault(d, (li, pos))
    return sorted(totals.items(), key=lambda kv: (-kv[1], best[kv[0]], first[kv[0]]))


def rrf_ref(lists, k=60.0, weights=None):
    weights = weights or [1.0] * len(lists)
    totals = {}
    for w, lst in zip(weights, lists, strict=True):
        for rank, (d, _) in enumerate(_ranked(lst), 1):
            totals[d] = totals.get(d, 0.0) + w / (k + rank)
    return _order(totals, lists)


def score_fusion_ref(lists, normalization="minmax", weights=None, missing="zero"):
    weights = weights or [1.0] * len(lists)
    normed = []
    for lst in lists:
        s = [x for _, x in lst]
        if not s or normalization == "none":
            normed.append({d: float(x) for d, x in lst})
        elif normalization == "minmax":
            lo, hi = min(s), max(s)
            normed.append({d: 1.0 if hi == lo else (x - lo) / (hi - lo) for d, x in lst})
        else:
            mu, sd = statistics.fmean(s), statistics.pstdev(s)
            normed.append({d: 0.0 if sd == 0 else (x - mu) / sd for d, x in lst})
    docs = {d for lst in lists for d, _ in lst}
    totals = {}
    for d in docs:
        t = 0.0
        for w, n in zip(weights, normed, strict=True):
            if d in n:
                t += w * n[d]
            elif missing == "min" and n:
                t += w * min(n.values())
        totals[d] = t
    return _order(totals, lists)
