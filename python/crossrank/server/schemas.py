"""Request and response bodies of the rerank, embed and health endpoints (pydantic models).

Field names follow the APIs that clients already speak:

* Cohere ``POST /v1/rerank`` and ``POST /v2/rerank`` (the shapes the ``cohere`` SDK sends and
  parses: ``results[].index``, ``results[].relevance_score``, ``id``, ``meta.billed_units``).
* Jina ``POST /v1/rerank``: the same request fields as Cohere v1; the response adds Jina's
  ``model`` and ``usage.total_tokens`` beside Cohere's fields, so one handler serves both.
* Hugging Face TEI ``POST /rerank`` and ``POST /embed``.

Unknown request fields are ignored (clients send options we do not implement, such as
Cohere's ``priority``), as the real services do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool


def _integral_float(value: Any) -> Any:
    # JSON Schema's "integer" includes 3.0; pydantic's strict int does not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A positive integer as JSON Schema defines integers: 3 and 3.0, but not "3", 3.5 or true.
PositiveInt = Annotated[int, Field(strict=True, ge=1), BeforeValidator(_integral_float)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RerankDocument(BaseModel):
    """A document given as an object; ``text`` is what gets scored, other fields are kept."""

    model_config = ConfigDict(extra="allow")
    text: str


class CohereRerankRequest(_Request):
    """Body of Cohere ``/v1/rerank`` and ``/v2/rerank`` (and Jina ``/v1/rerank``)."""

    model: str | None = Field(default=None, description="Echoed back; the server's model is always used.")
    query: str
    documents: list[str | RerankDocument] = Field(min_length=1)
    top_n: PositiveInt | None = Field(default=None, description="Return only the best top_n results.")
    return_documents: StrictBool | None = Field(
        default=None,
        description="Include each document in its result. Default: false on /v1 and /v2 (Cohere's "
        "default; Jina clients that want documents send true).",
    )
    max_tokens_per_doc: PositiveInt | None = Field(
        default=None, description="Cut each document to this many tokens before scoring (Cohere v2)."
    )
    rank_fields: list[Literal["text"]] | None = Field(
        default=None, description='Only ["text"] is supported: documents are scored by their text field.'
    )


class ResultDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: ResultDocument | None = None


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: float


class MetaTokens(BaseModel):
    input_tokens: float


class Meta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: MetaTokens | None = None
    warnings: list[str] | None = None


class Usage(BaseModel):
    total_tokens: int


class CohereRerankResponse(BaseModel):
    """Cohere's rerank response; ``model`` and ``usage`` are Jina's fields (v1 only)."""

    id: str
    results: list[RerankResult]
    meta: Meta
    model: str | None = None
    usage: Usage | None = None


class TEIRerankRequest(_Request):
    """Body of TEI ``/rerank``."""

    query: str
    texts: list[str] = Field(min_length=1)
    raw_scores: StrictBool = Field(default=False, description="Return raw logits instead of 0-1 scores.")
    return_text: StrictBool = False
    truncate: StrictBool | None = Field(
        default=None,
        description="Cut pairs longer than the model's maximum length. Unset or false: such a "
        "request is answered 413, as TEI does.",
    )
    truncation_direction: Literal["Right", "right"] = Field(
        default="Right", description="Only right truncation is supported."
    )


class TEIRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class TEIEmbedRequest(_Request):
    """Body of TEI ``/embed``."""

    inputs: str | Annotated[list[str], Field(min_length=1)]
    normalize: StrictBool = True
    truncate: StrictBool | None = Field(
        default=None,
        description="Accepted for TEI compatibility; texts are always cut at the model's maximum length.",
    )


class HealthResponse(BaseModel):
    status: Literal["ok", "shutting_down", "unhealthy"]
    model: str
    embed_model: str | None
    max_length: int | None
    queue_pairs: int
    queue_requests: int


class ErrorResponse(BaseModel):
    """Every error: ``message`` (Cohere's field) plus a machine-readable ``error_type``."""

    message: str
    error_type: str
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None
