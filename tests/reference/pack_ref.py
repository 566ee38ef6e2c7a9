"""Slow, obvious pure-Python reference of crossrank.text.packing (the test oracle).

Written from the rules in ``cpp/include/crossrank/pack.hpp``, not from the C++ code: truncation follows
the statement order of Hugging Face tokenizers' ``truncate_encodings`` (swap so the first is the
shorter, keep ``max(n1, T - n1)`` of the longer, halve both when that still overflows), windows are
built by listing starts, and batches by appending rows one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class RefError(ValueError):
    pass


def truncate_ref(q: int, d: int, target: int, strategy: str) -> tuple[int, int]:
    total = q + d
    if total <= target:
        return q, d
    if strategy == "longest_first":
        n1, n2 = q, d
        swap = False
        if n1 > n2:
            swap = True
            n1, n2 = n2, n1
        n2 = n1 if n1 > target else max(n1, target - n1)
        if n1 + n2 > target:
            n1 = target // 2
            n2 = n1 + target % 2
        if swap:
            n1, n2 = n2, n1
        return n1, n2
    to_remove = total - target
    if strategy == "only_second":
        if d > to_remove:
            return q, d - to_remove
        raise RefError("only_second cannot fit")
    if strategy == "only_first":
        if q > to_remove:
            return q - to_remove, d
        raise RefError("only_first cannot fit")
    raise RefError(f"bad strategy {strategy}")


@dataclass
class RefRow:
    pair: int
    window: int
    start: int
    end: int
    tokens: list[int]
    types: list[int]


@dataclass
class RefPlan:
    truncated: list[bool] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    rows: list[RefRow] = field(default_factory=list)
    batches: list[tuple[list[int], int]] = field(default_factory=list)  # (row ids, padded length)


def bucket_ref(n: int, buckets: int | list[int] | None, max_length: int) -> int:
    if buckets is None:
        length = n
    elif isinstance(buckets, int):
        length = n
        while length % buckets:
            length += 1
    else:
        fitting = [b for b in buckets if b >= n]
        length = fitting[0] if fitting else n
    return min(length, max_length)


def plan_ref(
    queries: list[list[int]],
    docs: list[list[int]],
    *,
    prefix: list[int],
    prefix_types: list[int],
    middle: list[int],
    middle_types: list[int],
    suffix: list[int],
    suffix_types: list[int],
    query_type: int,
    doc_type: int,
    max_length: int,
    truncation: str = "longest_first",
    max_query_length: int | None = None,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 256,
    buckets: int | list[int] | None = 16,
    window_stride: int | None = None,
    max_windows: int | None = None,
) -> RefPlan:
    n_special = len(prefix) + len(middle) + len(suffix)
    target = max_length - n_special
    out = RefPlan()
    for i, doc in enumerate(docs):
        query = queries[0] if len(queries) == 1 else queries[i]
        truncated = False
        q = list(query)
        if max_query_length is not None and len(q) > max_query_length:
            q = q[:max_query_length]
            truncated = True
        kq, kd = truncate_ref(len(q), len(doc), target, truncation)
        if kq < len(query):
            truncated = True
        q = q[:kq]
        if window_stride is None or kd == len(doc):
            if kd < len(doc):
                truncated = True
            spans = [(0, kd)]
        else:
            width = target - kq
            step = min(window_stride, width)
            starts = [*range(0, len(doc) - width, step), len(doc) - width]
            if max_windows is not None and len(starts) > max_windows:
                starts = starts[:max_windows]
                truncated = True
            spans = [(s, s + width) for s in starts]
        for w, (s, e) in enumerate(spans):
            tokens = prefix + q + middle + doc[s:e] + suffix
            types = prefix_types + [query_type] * len(q) + middle_types + [doc_type] * (e - s) + suffix_types
            out.rows.append(RefRow(i, w, s, e, tokens, types))
        out.truncated.append(truncated)
        first = next(r for r in out.rows if r.pair == i)
        out.n_tokens.append(len(first.tokens))

    order = sorted(range(len(out.rows)), key=lambda r: -len(out.rows[r].tokens))  # stable
    current: list[int] = []
    length = 0
    for r in order:
        if not current:
            current = [r]
            length = bucket_ref(len(out.rows[r].tokens), buckets, max_length)
            continue
        if len(current) + 1 <= max_batch_size and (len(current) + 1) * length <= max_batch_tokens:
            current.append(r)
        else:
            out.batches.append((current, length))
            current = [r]
            length = bucket_ref(len(out.rows[r].tokens), buckets, max_length)
    if current:
        out.batches.append((current, length))
    return out


def materialize_ref(plan: RefPlan, b: int, pad_id: int, pad_type: int) -> tuple[list, list, list]:
    rows, length = plan.batches[b]
    ids, mask, types = [], [], []
    for r in rows:
        row = plan.rows[r]
        pad = length - len(row.tokens)
        ids.append(row.tokens + [pad_id] * pad)
        mask.append([1] * len(row.tokens) + [0] * pad)
        types.append(row.types + [pad_type] * pad)
    return ids, mask, types
