"""Prompt templates of pointwise LLM rerankers: where instruction, query and document go, and the scoring tokens.

A template is one text with the slots ``{instruction}``, ``{query}`` and ``{document}`` (``{document}``
exactly once, after the query). Everything before ``{document}`` is the prompt's *prefix* (shared by every
candidate of a query: computed once per query by the prefix cache), everything after it the *tail*, which
always reaches the model whole: only the document is cut to fit ``max_length``. The model reads the
next-token logits of ``positive`` and ``negative`` after the tail.

Built in: ``"qwen3"`` (Qwen3-Reranker: system prompt, ``<Instruct>``/``<Query>``/``<Document>``, empty think
block, "yes"/"no") and ``"mxbai"`` (mxbai-rerank-v2: Qwen's default system prompt, an optional
``instruction:`` line, ``query:``/``document:``, then the relevance task, "1"/"0"; as the ``mxbai-rerank``
library's ``MxbaiRerankV2`` builds it, with no token before ``<|im_start|>``).
Custom: a JSON file (``template``, ``positive``, ``negative``, optional ``default_instruction``,
``instruction_format`` and ``name``); a model directory may carry one as ``crossrank_pointwise.json``.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BUILTIN_TEMPLATES", "CONFIG_FILE", "PromptTemplate", "resolve_template"]

CONFIG_FILE = "crossrank_pointwise.json"
_SLOTS = ("instruction", "query", "document")


@dataclass(frozen=True)
class PromptTemplate:
    """A pointwise reranking prompt and its two scoring tokens (immutable: safe to share across threads).

    Parameters
    ----------
    template : str
        The prompt with ``{instruction}`` (optional), ``{query}`` and ``{document}`` slots; literal braces
        are written ``{{`` and ``}}``.
    positive, negative : str
        The tokens whose next-token logits are compared (each must be one token of the model's vocabulary).
    default_instruction : str
        Fills ``{instruction}`` when a call gives none.
    instruction_format : str
        How a non-empty instruction is written into the ``{instruction}`` slot (its own ``{instruction}``
        slot once); an empty one writes nothing. Default ``"{instruction}"``: the text itself. mxbai's
        ``"instruction: {instruction}\\n"`` adds its line only when there is an instruction.
    name : str
        For messages and ``repr``.
    length_rule : {"prompt", "body"}
        What ``max_length`` counts. ``"prompt"`` (Qwen3-Reranker's rule): the whole prompt. ``"body"``
        (mxbai-rerank's rule): the text from the first slot through the document, the template's text
        before the first slot and after the document coming on top (the total still within the model's
        positions); the instruction-and-query piece is then tokenized on its own, as that library does,
        and cut to 3/4 of the body. Needs the slots in the order ``{instruction}`` (optional),
        ``{query}``, ``{document}``.

    Raises
    ------
    ValueError
        No ``{document}`` slot (or more than one), no ``{query}`` slot before it, an unknown slot, or empty
        scoring tokens.
    """

    template: str
    positive: str
    negative: str
    default_instruction: str = ""
    name: str = "custom"
    instruction_format: str = "{instruction}"
    length_rule: str = "prompt"

    def __post_init__(self) -> None:
        if not isinstance(self.template, str):
            raise TypeError(f"template must be a str, got {type(self.template).__name__}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
        except ValueError as exc:
            raise ValueError(f"template {self.name!r} is not a valid format string: {exc}") from exc
        unknown = sorted({f for f in fields if f not in _SLOTS})
        if unknown:
            raise ValueError(
                f"template {self.name!r} has unknown slot(s) {', '.join('{' + f + '}' for f in unknown)}; "
                "the slots are {instruction}, {query} and {document}"
            )
        if fields.count("document") != 1:
            raise ValueError(
                f"template {self.name!r} must have exactly one {{document}} slot (it has "
                f"{fields.count('document')}): the document is what the reranker cuts and scores"
            )
        if "query" not in fields[: fields.index("document")]:
            raise ValueError(f"template {self.name!r} needs a {{query}} slot before {{document}}")
        for slot in ("instruction", "query"):
            if fields.count(slot) > 1:
                raise ValueError(f"template {self.name!r} has {{{slot}}} more than once")
        for name in ("positive", "negative"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"template {self.name!r}: {name} must be a non-empty token string")
        if not isinstance(self.instruction_format, str):
            raise TypeError(f"instruction_format must be a str, got {type(self.instruction_format).__name__}")
        try:
            inner = [f for _, f, _, _ in string.Formatter().parse(self.instruction_format) if f is not None]
        except ValueError as exc:
            raise ValueError(
                f"template {self.name!r}: instruction_format is not a format string: {exc}"
            ) from exc
        if inner != ["instruction"]:
            raise ValueError(
                f"template {self.name!r}: instruction_format must have the one slot {{instruction}} "
                f"(it has {', '.join('{' + f + '}' for f in inner) or 'none'})"
            )
        if self.length_rule not in ("prompt", "body"):
            raise ValueError(
                f"template {self.name!r}: length_rule must be 'prompt' or 'body', got {self.length_rule!r}"
            )
        if self.length_rule == "body" and fields not in (
            ["query", "document"],
            ["instruction", "query", "document"],
        ):
            raise ValueError(
                f"template {self.name!r}: length_rule 'body' needs the slots in the order {{instruction}} "
                "(optional), {query}, {document}"
            )
        if self.positive == self.negative:
            raise ValueError(
                f"template {self.name!r}: positive and negative are the same token {self.positive!r}"
            )

    @property
    def has_instruction(self) -> bool:
        """Whether the template has an ``{instruction}`` slot (``instruction=`` applies)."""
        return any(f == "instruction" for _, f, _, _ in string.Formatter().parse(self.template))

    def split(self, query: str, instruction: str | None) -> tuple[str, str]:
        """Return the prompt's prefix (up to the document) and its tail (after the document).

        Parameters
        ----------
        query : str
            The query.
        instruction : str, optional
            The instruction; None uses :attr:`default_instruction`.
        """
        head, _, tail = self.template.partition("{document}")
        if instruction is not None and not self.has_instruction:
            raise ValueError(f"template {self.name!r} has no {{instruction}} slot; pass instruction=None")
        inst = self.default_instruction if instruction is None else instruction
        inst = self.instruction_format.format(instruction=inst) if inst else ""
        # Tail: literal text (doubled braces undone, no slot can follow {document}).
        return head.format(instruction=inst, query=query), tail.format()

    def body_pieces(self, query: str, instruction: str | None) -> tuple[str, str, str]:
        """Split the prefix as ``length_rule="body"`` tokenizes it.

        Returns the text before the first slot, the piece from the first slot through the query
        (instruction line included) and the text between the query and the document.

        Parameters
        ----------
        query : str
            The query.
        instruction : str, optional
            The instruction; None uses :attr:`default_instruction`.
        """
        if instruction is not None and not self.has_instruction:
            raise ValueError(f"template {self.name!r} has no {{instruction}} slot; pass instruction=None")
        inst = self.default_instruction if instruction is None else instruction
        values = {
            "instruction": self.instruction_format.format(instruction=inst) if inst else "",
            "query": query,
        }
        head = self.template.partition("{document}")[0]
        lead, piece, after = "", "", ""
        seen_query = False
        for i, (literal, field, _, _) in enumerate(string.Formatter().parse(head)):
            if i == 0:
                lead = literal
            elif seen_query:
                after += literal
            else:
                piece += literal
            if field is not None:
                piece += values[field]
                seen_query = seen_query or field == "query"
        return lead, piece, after

    def render(self, query: str, document: str, instruction: str | None = None) -> str:
        """Return the whole prompt text for one pair.

        Parameters
        ----------
        query, document : str
            The pair.
        instruction : str, optional
            None uses :attr:`default_instruction`.
        """
        head, tail = self.split(query, instruction)
        return head + document + tail

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> PromptTemplate:
        """Read a template from a JSON file (``template``, ``positive``, ``negative``, ...).

        Parameters
        ----------
        path : str or PathLike
            The file.

        Raises
        ------
        ValueError
            Not a JSON object, missing or unknown keys, or a bad template.
        """
        p = Path(path)
        try:
            data: Any = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the pointwise template file {p}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{p} must hold a JSON object with template, positive and negative")
        allowed = {
            "template",
            "positive",
            "negative",
            "default_instruction",
            "instruction_format",
            "name",
            "length_rule",
        }
        missing = sorted({"template", "positive", "negative"} - set(data))
        extra = sorted(set(data) - allowed)
        if missing or extra:
            raise ValueError(
                f"{p}: missing key(s) {missing} / unknown key(s) {extra}; "
                f"the keys are {', '.join(sorted(allowed))}"
            )
        return cls(**{"name": p.stem, **data})


_QWEN3_SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
_MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)

BUILTIN_TEMPLATES: dict[str, PromptTemplate] = {
    "qwen3": PromptTemplate(
        "<|im_start|>system\n" + _QWEN3_SYSTEM + "<|im_end|>\n<|im_start|>user\n"
        "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        positive="yes",
        negative="no",
        default_instruction="Given a web search query, retrieve relevant passages that answer the query",
        name="qwen3",
    ),
    # mixedbread-ai/mxbai-rerank, MxbaiRerankV2: chat prefix + ["instruction: I" + "\n"] + "query: Q" + "\n" +
    # "document: D" + "\n" + task + chat suffix, each piece tokenized without special tokens (no BOS);
    # its max_length bounds the instruction/query/document body (length_rule "body").
    "mxbai": PromptTemplate(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\n{instruction}query: {query}\ndocument: {document}\n"
        + _MXBAI_TASK.replace("{", "{{").replace("}", "}}")
        + "<|im_end|>\n<|im_start|>assistant\n",
        positive="1",
        negative="0",
        default_instruction="",
        name="mxbai",
        instruction_format="instruction: {instruction}\n",
        length_rule="body",
    ),
}


def resolve_template(
    template: str | os.PathLike[str] | PromptTemplate | None, model_root: Path | None
) -> PromptTemplate:
    """Pick the template: an object, a built-in name, a JSON file, or (None) the model's own choice.

    With None: the model directory's ``crossrank_pointwise.json`` when present, else ``"mxbai"`` when
    the model's path names mxbai, else ``"qwen3"``.

    Parameters
    ----------
    template : PromptTemplate, str, PathLike or None
        What the caller asked for.
    model_root : Path, optional
        The model directory.

    Raises
    ------
    ValueError
        An unknown name that is not a file, or a bad template file.
    """
    if isinstance(template, PromptTemplate):
        return template
    if template is None:
        if model_root is not None and (model_root / CONFIG_FILE).is_file():
            return PromptTemplate.from_json(model_root / CONFIG_FILE)
        named = str(model_root or "").lower()
        return BUILTIN_TEMPLATES["mxbai" if "mxbai" in named else "qwen3"]
    key = os.fspath(template)
    if key in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[key]
    if Path(key).expanduser().is_file():
        return PromptTemplate.from_json(Path(key).expanduser())
    raise ValueError(
        f"template must be {', '.join(repr(k) for k in BUILTIN_TEMPLATES)}, a JSON file or a PromptTemplate; "
        f"got {key!r} (no such file)"
    )
