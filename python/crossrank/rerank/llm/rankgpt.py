"""RankGPT's listwise logic, free of any I/O: sliding windows, the prompt, the answer parser, passage cuts.

The method is *permutation generation* from Sun et al., "Is ChatGPT Good at Search? Investigating Large
Language Models as Re-Ranking Agents" (EMNLP 2023, https://arxiv.org/abs/2304.09542): the model reads a
query and a numbered list of passages ``[1]`` .. ``[m]`` and answers with an ordering such as
``[2] > [1] > [3]``. A list longer than the model's window is ranked by a window of ``window`` passages that
slides from the bottom of the list to the top in steps of ``step``; the best ``window - step`` passages of
each window are carried up into the next one, so the best ``window - step`` passages of the whole list
reach the top (a bubble sort with a wide comparator).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SYSTEM_PROMPT",
    "LLMRepairs",
    "PassageTruncator",
    "apply_permutation",
    "build_messages",
    "check_window",
    "parse_permutation",
    "prepare_passages",
    "scores_from_order",
    "sliding_windows",
]

# Wording of the RankGPT instruction (Sun et al. 2023, Fig. 2 / the authors' repository): a system role,
# the query, the numbered passages, then the query again with the output format "[] > []".
SYSTEM_PROMPT = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)


# --------------------------------------------------------------------------------------------- windows
def sliding_windows(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` windows visited for a list of ``n`` candidates, bottom first.

    The first window is ``[n - window, n)``; each next one is ``step`` positions higher; the last one
    starts at 0 (clipped, so it may be shorter than ``window``). The count is
    ``1 + ceil(max(0, n - window) / step)`` for ``n > 0`` and 0 for ``n <= 1`` (nothing to order).
    Unlike the loop in the RankGPT repository, the top of a list whose length is not ``window`` plus a
    multiple of ``step`` is still visited.

    Parameters
    ----------
    n : int
        Number of candidates.
    window, step : int
        Window size (>= 2) and stride (1 <= step <= window).

    Returns
    -------
    list of (int, int)
        Half-open position ranges, in the order they are sent to the model.
    """
    check_window(window, step)
    if n <= 1:
        return []
    out: list[tuple[int, int]] = []
    end = n
    while True:
        start = max(0, end - window)
        out.append((start, end))
        if start == 0:
            return out
        end -= step


def check_window(window: object, step: object) -> None:
    """Refuse a window under 2 passages or a step outside ``[1, window]`` (``ValueError``).

    Parameters
    ----------
    window, step : int
        Window size and stride.
    """
    if not isinstance(window, int) or isinstance(window, bool) or window < 2:
        raise ValueError(f"window must be an int >= 2, got {window!r}")
    if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step <= window:
        raise ValueError(
            f"step must be an int with 1 <= step <= window ({window}), got {step!r}; "
            "a step smaller than the window lets the best passages move up between windows"
        )


# --------------------------------------------------------------------------------------------- parsing
@dataclass
class LLMRepairs:
    """Counts of the fixes applied to the model's answers (all windows of one query, or totals).

    Mutable and unlocked: each call builds its own; :attr:`LLMReranker.total_repairs` returns a copy.

    Attributes
    ----------
    out_of_range : int
        Identifiers outside ``[1, m]`` that were ignored.
    duplicates : int
        Identifiers repeated in an answer; only the first occurrence was kept.
    missing : int
        Passages the answer left out; appended after the ranked ones in their current order.
    unbracketed : int
        Answers whose identifiers were bare numbers (``2 > 1 > 3``) instead of ``[2] > [1] > [3]``.
    unparseable : int
        Answers with no identifier at all (empty, prose only); that window kept its order.
    """

    out_of_range: int = 0
    duplicates: int = 0
    missing: int = 0
    unbracketed: int = 0
    unparseable: int = 0

    def add(self, other: LLMRepairs) -> None:
        """Add ``other``'s counts to this one.

        Parameters
        ----------
        other : LLMRepairs
            Counts to add.
        """
        self.out_of_range += other.out_of_range
        self.duplicates += other.duplicates
        self.missing += other.missing
        self.unbracketed += other.unbracketed
        self.unparseable += other.unparseable

    @property
    def total(self) -> int:
        """Number of answers or identifiers that needed a repair."""
        return self.out_of_range + self.duplicates + self.missing + self.unbracketed + self.unparseable


_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_CHAIN = re.compile(r"\d+(?:\s*(?:>|,)\s*\d+)+")
_NUMBER = re.compile(r"\d+")


def parse_permutation(text: str | None, m: int) -> tuple[list[int], LLMRepairs]:
    """Read a permutation of ``range(m)`` out of a model's answer; never raises.

    The identifiers are the bracketed numbers ``[k]`` when the answer has any; otherwise the longest
    ``a > b > c`` (or comma) chain of bare numbers; otherwise every bare number. A ``<think>...</think>``
    block (reasoning models) is dropped first. Identifiers are 1-based in the answer. Out-of-range and
    repeated identifiers are dropped; passages left out are appended in their current order.

    Parameters
    ----------
    text : str or None
        The answer (``None`` counts as empty).
    m : int
        Number of passages in the window.

    Returns
    -------
    perm : list of int
        A permutation of ``range(m)``, best first.
    repairs : LLMRepairs
        What had to be fixed.
    """
    repairs = LLMRepairs()
    body = _THINK.sub(" ", text or "")
    tokens = _BRACKETED.findall(body)
    if not tokens:
        chains = _CHAIN.findall(body)
        if chains:
            tokens = _NUMBER.findall(max(chains, key=lambda c: len(_NUMBER.findall(c))))
        else:
            tokens = _NUMBER.findall(body)
        if tokens:
            repairs.unbracketed = 1
    if not tokens:
        repairs.unparseable = 1
        return list(range(m)), repairs
    seen: set[int] = set()
    perm: list[int] = []
    for tok in tokens:
        k = int(tok[:9]) - 1  # [:9]: a runaway digit string stays a (large, out-of-range) int
        if not 0 <= k < m:
            repairs.out_of_range += 1
        elif k in seen:
            repairs.duplicates += 1
        else:
            seen.add(k)
            perm.append(k)
    if not perm:
        repairs.unparseable = 1
    missing = [k for k in range(m) if k not in seen]
    repairs.missing = len(missing) if perm else 0
    return perm + missing, repairs


# --------------------------------------------------------------------------------------------- tokens
class PassageTruncator:
    """Cut a passage to a token budget with the best tokenizer available; ``name`` says which.

    Thread-safe after construction (tokenizers and tiktoken encoders are read-only).

    Parameters
    ----------
    spec : None, str, path or tokenizers.Tokenizer
        See ``tokenizer`` of :class:`~crossrank.rerank.llm.LLMReranker`.

    Raises
    ------
    ValueError
        A path without a ``tokenizer.json``.
    TypeError
        An object that is not a tokenizer.
    ImportError
        ``"tiktoken:..."`` without the ``tiktoken`` package.
    """

    def __init__(self, spec: object) -> None:
        self._encode: Callable[[str], list[tuple[int, int]]] | None = None
        self._tiktoken: Any = None
        if spec is None:
            try:
                import tiktoken

                self._tiktoken = tiktoken.get_encoding("o200k_base")
                self.name = "tiktoken:o200k_base"
            except Exception:  # not installed, or its vocabulary cannot be fetched offline
                self.name = "whitespace-words"
            return
        if isinstance(spec, str) and spec == "whitespace":
            self.name = "whitespace-words"
            return
        if isinstance(spec, str) and spec.startswith("tiktoken:"):
            try:
                import tiktoken
            except ImportError as e:
                raise ImportError(
                    "tokenizer='tiktoken:...' needs the 'tiktoken' package: pip install tiktoken"
                ) from e
            self._tiktoken = tiktoken.get_encoding(spec.split(":", 1)[1])
            self.name = spec
            return
        if isinstance(spec, (str, os.PathLike)):
            from tokenizers import Tokenizer

            path = os.fspath(spec)
            if os.path.isdir(path):
                path = os.path.join(path, "tokenizer.json")
            if not os.path.isfile(path):
                raise ValueError(
                    f"tokenizer must be None, 'whitespace', 'tiktoken:<encoding>', a tokenizer.json file or "
                    f"a directory holding one; no tokenizer.json at {path!r}"
                )
            spec = Tokenizer.from_file(path)
            self.name = f"hf:{path}"
        else:
            self.name = f"hf:{type(spec).__name__}"
        if not hasattr(spec, "encode"):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer or a path, got {type(spec).__name__}")
        # A private copy without padding or truncation (a model's tokenizer.json often pads to and cuts
        # at its max length, which would miscount long passages).
        src: Any = spec
        tok: Any = type(src).from_str(src.to_str()) if hasattr(src, "to_str") else src
        if hasattr(tok, "no_padding"):
            tok.no_padding()
            tok.no_truncation()

        def encode(text: str) -> list[tuple[int, int]]:
            return list(tok.encode(text, add_special_tokens=False).offsets)

        self._encode = encode

    def truncate(self, text: str, budget: int) -> tuple[str, bool]:
        """Return ``(text cut to about budget tokens, whether it was cut)``.

        Parameters
        ----------
        text : str
            The passage.
        budget : int
            Tokens to keep at most.
        """
        if self._tiktoken is not None:
            ids = self._tiktoken.encode(text, disallowed_special=())
            if len(ids) <= budget:
                return text, False
            return self._tiktoken.decode(ids[:budget]), True
        if self._encode is not None:
            offsets = self._encode(text)
            if len(offsets) <= budget:
                return text, False
            return text[: offsets[budget - 1][1]], True
        # Approximation without a tokenizer: English text averages about 0.75 words per BPE token
        # (OpenAI's rule of thumb), so a budget of T tokens keeps floor(0.75 T) whitespace-separated words.
        words = text.split()
        keep = max(1, (3 * budget) // 4)
        if len(words) <= keep:
            return text, False
        return " ".join(words[:keep]), True


def build_messages(query: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """Return the chat messages asking the model to rank ``passages`` for ``query`` (RankGPT wording).

    Passages are labelled ``[1]`` .. ``[m]`` one per line (newlines inside a passage are collapsed by
    the caller) and the answer is asked for as ``[2] > [1] > ...``.

    Parameters
    ----------
    query : str
        The query.
    passages : sequence of str
        The window's passages, in their current order.
    """
    m = len(passages)
    lines = [
        f"I will provide you with {m} passages, each indicated by a numerical identifier []. "
        f"Rank the passages based on their relevance to the search query: {query}.",
        "",
    ]
    lines += [f"[{i}] {p}" for i, p in enumerate(passages, start=1)]
    lines += [
        "",
        f"Search Query: {query}.",
        f"Rank the {m} passages above based on their relevance to the search query. All the passages "
        "should be included and listed using identifiers, in descending order of relevance. The output "
        "format should be [] > [], e.g., [2] > [1]. Only respond with the ranking results, do not say "
        "any word or explain.",
    ]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def prepare_passages(
    documents: Sequence[str], truncator: PassageTruncator, max_tokens: int
) -> tuple[list[str], np.ndarray]:
    """Passages as the prompt shows them: whitespace collapsed (one per line), cut to ``max_tokens``.

    Parameters
    ----------
    documents : sequence of str
        The candidates.
    truncator : PassageTruncator
        Counts tokens.
    max_tokens : int
        Tokens per passage at most.

    Returns
    -------
    passages : list of str
    truncated : numpy.ndarray
        bool ``[n]``: the passage was cut.
    """
    passages: list[str] = []
    truncated = np.zeros(len(documents), dtype=bool)
    for i, d in enumerate(documents):
        text, cut = truncator.truncate(" ".join(d.split()), max_tokens)
        passages.append(text)
        truncated[i] = cut
    return passages, truncated


def apply_permutation(order: list[int], start: int, end: int, perm: Sequence[int]) -> None:
    """Reorder ``order[start:end]`` in place by a window's answer (``perm`` is best first, 0-based).

    Parameters
    ----------
    order : list of int
        The current ranking (document indices, best first).
    start, end : int
        The window's positions.
    perm : sequence of int
        A permutation of ``range(end - start)``.
    """
    ids = order[start:end]
    order[start:end] = [ids[k] for k in perm]


def scores_from_order(order: Sequence[int]) -> np.ndarray:
    """Scores of a final ranking: the document at rank ``r`` (0 = best) of ``n`` gets ``n - r``.

    A listwise model gives an order, not scores; ``n - r`` keeps the order, is positive, and makes the
    best of every list score ``n``. Compare these scores within one query only.

    Parameters
    ----------
    order : sequence of int
        Document indices, best first (a permutation of ``range(n)``).

    Returns
    -------
    numpy.ndarray
        float64 ``[n]``, by document index.
    """
    n = len(order)
    scores = np.empty(n, dtype=np.float64)
    scores[np.asarray(order, dtype=np.int64)] = np.arange(n, 0, -1, dtype=np.float64)
    return scores
