"""Request and response bodies of the rerank, embed and health endpoints (pydantic models).

Field names follow the APIs that clients already speak:

* Cohere ``POST /v1/rerank`` and ``POST /v2/rerank`` (the shapes the ``cohere`` SDK sends and
  parses: ``results[].index``, ``results[].relevance_score``, ``id``, ``meta.billed_units``).
* Jina ``POST /v1/rerank``: the same request fields as Cohere v1; the response adds Jina's
  ``model`` and ``usage.total_tokens`` beside Cohere's fields, so one handler serves both.
* Hugging Face TEI ``POST /rerank`` and ``POST /embed`` (also ``POST /`` and ``POST /invocations``,
  which take either body) and ``GET /info``.
* OpenAI ``POST /v1/embeddings``.

Unknown request fields are ignored (clients send options we do not implement, such as
Cohere's ``priority``), as the real services do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, create_model


def _integral_float(value: Any) -> Any:
    # JSON Schema's "integer" includes 3.0; pydantic's strict int does not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A positive integer as JSON Schema defines integers: 3 and 3.0, but not "3", 3.5 or true.
PositiveInt = Annotated[int, Field(strict=True, ge=1), BeforeValidator(_integral_float)]

#: TEI's truncation direction; TEI spells it "Left"/"Right", huggingface_hub "left"/"right".
TruncationDirection = Literal["Left", "Right", "left", "right"]


def _is_ids(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _no_token_ids(value: Any) -> Any:
    # OpenAI also takes token ids (an array, or an array of arrays); they are tiktoken's, not ours.
    if (
        isinstance(value, list)
        and value
        and all(_is_ids(v) or (isinstance(v, list) and all(map(_is_ids, v))) for v in value)
    ):
        raise ValueError(
            "input holds token ids; this server embeds text only: send a string or a list of strings "
            "(LangChain's OpenAIEmbeddings: pass check_embedding_ctx_length=False)"
        )
    return value


def _floats_only(value: Any) -> Any:
    if value == "base64":
        raise ValueError("base64 is served by POST /v1/embeddings (OpenAI's API); /embed answers floats")
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RerankDocument(BaseModel):
    """A document given as an object: ``text`` is scored, or the fields ``rank_fields`` names.

    Without ``rank_fields`` a document object needs ``text`` (the request's schema says so).
    """

    model_config = ConfigDict(extra="allow")
    text: str | None = None


# Without rank_fields (absent or null), every document object must carry a string ``text``; with
# rank_fields, any object will do. Stated in the schema so that clients and fuzzers see the rule.
_TEXT_UNLESS_RANK_FIELDS: dict[str, Any] = {
    "if": {"properties": {"rank_fields": {"type": "null"}}},
    "then": {
        "properties": {
            "documents": {
                "items": {
                    "anyOf": [
                        {"type": "string"},
                        {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
                    ]
                }
            }
        }
    },
}

#: A non-empty field name (Cohere's rank_fields entries).
FieldName = Annotated[str, Field(min_length=1)]


class CohereRerankRequest(_Request):
    """Body of Cohere ``/v1/rerank`` and ``/v2/rerank`` (and Jina ``/v1/rerank``)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_TEXT_UNLESS_RANK_FIELDS)

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
    rank_fields: Annotated[list[FieldName], Field(min_length=1)] | None = Field(
        default=None,
        description='The document fields to score, in order: each becomes a "key: value" line (a '
        'string document is {"text": ...}; a field a document lacks is left out of it, with a '
        'warning in meta). Unset or ["text"]: the text as it is.',
    )


class ResultDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str | None = None


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
        description="Cut pairs longer than the model's maximum length. False: such a request is "
        "answered 413, as TEI does; unset: the server's --auto-truncate (off by default, as in TEI).",
    )
    truncation_direction: TruncationDirection = Field(
        default="Right",
        description="Which end of a too-long pair is cut: the end of the document (Right) or its "
        "start (Left).",
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
        description="Cut inputs longer than the model's maximum length. False: such a request is "
        "answered 413, as TEI does; unset: the server's --auto-truncate (off by default, as in TEI).",
    )
    truncation_direction: TruncationDirection = Field(
        default="Right", description="Which end of a too-long text is cut: its end (Right) or start (Left)."
    )
    prompt_name: str | None = Field(
        default=None,
        description="A prompt the model declares (sentence-transformers' prompts, e.g. query), prepended "
        "to every input; 422 when the model has no such prompt.",
    )
    dimensions: PositiveInt | None = Field(
        default=None,
        description="Keep the first N dimensions, then normalize (Matryoshka models only; 422 otherwise "
        "or when N exceeds the model's dimensions).",
    )
    encoding_format: Annotated[Literal["float"] | None, BeforeValidator(_floats_only)] = Field(
        default=None, description='Only "float" here; base64 is served by POST /v1/embeddings.'
    )


class OpenAIEmbeddingRequest(_Request):
    """Body of OpenAI ``POST /v1/embeddings``."""

    input: Annotated[str | Annotated[list[str], Field(min_length=1)], BeforeValidator(_no_token_ids)] = Field(
        description="A text or a list of texts (token arrays are refused: send text)."
    )
    model: str | None = Field(default=None, description="Echoed back; the server's embed model is used.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: JSON numbers; base64: little-endian float32 bytes."
    )
    dimensions: PositiveInt | None = Field(
        default=None, description="As /embed's dimensions (Matryoshka models only)."
    )
    user: str | None = None


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    """OpenAI's embeddings response; ``usage`` only when the model reports token counts."""

    object: Literal["list"]
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage | None = None


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorResponse(BaseModel):
    """OpenAI's error shape (``POST /v1/embeddings`` only)."""

    error: OpenAIErrorBody


class TEIInfo(BaseModel):
    """TEI's ``GET /info`` (its fields), plus ``embedding_model`` when ``/embed`` has a model."""

    model_config = ConfigDict(extra="allow")
    model_id: str
    model_sha: str | None
    model_dtype: str
    model_type: dict[str, Any]
    max_concurrent_requests: int
    max_input_length: int | None
    max_batch_tokens: int
    max_batch_requests: int | None
    max_client_batch_size: int
    auto_truncate: bool
    tokenization_workers: int
    version: str
    sha: str | None
    docker_label: str | None


class HealthResponse(BaseModel):
    status: Literal["ok", "shutting_down", "unhealthy"]
    model: str
    embed_model: str | None
    max_length: int | None
    queue_pairs: int
    queue_requests: int


class ErrorResponse(BaseModel):
    """Every error but the OpenAI route's: the message as ``message`` (Cohere), ``error`` (TEI) and
    ``detail`` (Jina), plus a machine-readable ``error_type``."""

    message: str
    error: str
    detail: str
    error_type: str
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


# -- per-model request schemas --------------------------------------------------------------------
# What a model allows (prompt names, Matryoshka sizes, left truncation) is part of the request schema
# the server publishes, so clients and fuzzers see it; a value outside it is refused with a message
# saying why (never ignored).
def _checked(allowed: tuple[Any, ...], why: Any) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or value not in allowed):
            raise ValueError(why(value))
        return value

    return BeforeValidator(check)


def _dimensions_type(matryoshka: Any, dim: int | None) -> Any:
    if matryoshka is None:
        return Annotated[
            None,
            _checked(
                (),
                lambda v: (
                    f"dimensions={v}: this embed model was not declared Matryoshka-trained, so its "
                    "vectors cannot be shortened; omit dimensions (or start the server with --embed-matryoshka "
                    "any if the model was trained for it)"
                ),
            ),
        ]
    if matryoshka != "any":
        sizes = tuple(int(d) for d in matryoshka)
        return Annotated[
            Literal[sizes] | None,
            _checked(sizes, lambda v: f"dimensions={v} is not one of this model's sizes {list(sizes)}"),
        ]
    if dim is None:
        return PositiveInt | None

    def at_most(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > dim:
            raise ValueError(f"dimensions={value} is more than this model's {dim} dimensions")
        return value

    return (
        Annotated[
            int, Field(strict=True, ge=1, le=dim), BeforeValidator(_integral_float), BeforeValidator(at_most)
        ]
        | None
    )


def _prompt_type(prompts: tuple[str, ...]) -> Any:
    def why(value: Any) -> str:
        have = ", ".join(repr(p) for p in prompts) or "none"
        return (
            f"prompt_name {value!r} is not a prompt of this model (it declares: {have}); prompts come from "
            "the model's config_sentence_transformers.json"
        )

    if not prompts:
        return Annotated[None, _checked((), why)]
    return Annotated[Literal[prompts] | None, _checked(prompts, why)]


def _direction_type(left: bool, what: str) -> Any:
    if left:
        return TruncationDirection
    return Annotated[
        Literal["Right", "right"],
        _checked(
            ("Right", "right"),
            lambda v: f"truncation_direction {v!r}: {what} cannot truncate from the left; send Right",
        ),
    ]


def _field(model: type[BaseModel], name: str) -> Any:
    """A fresh field with the default and description of ``model``'s (not its type's constraints)."""
    f = model.model_fields[name]
    return Field(default=f.default, description=f.description)


def embed_request_models(
    *, prompts: tuple[str, ...], matryoshka: Any, dim: int | None, left: bool
) -> tuple[type[TEIEmbedRequest], type[OpenAIEmbeddingRequest]]:
    """The TEI and OpenAI embed request bodies for one embed model.

    Parameters
    ----------
    prompts
        Its prompt names.
    matryoshka
        ``"any"``, a tuple of sizes, or None (see ``EmbedModel.matryoshka_dims``).
    dim
        Its vector size, when known (the bound of ``dimensions``).
    left
        Whether it can truncate from the left.
    """
    dims = _dimensions_type(matryoshka, dim)
    tei = create_model(
        "TEIEmbedRequest",
        __base__=TEIEmbedRequest,
        prompt_name=(_prompt_type(prompts), _field(TEIEmbedRequest, "prompt_name")),
        dimensions=(dims, _field(TEIEmbedRequest, "dimensions")),
        truncation_direction=(
            _direction_type(left, "this embed model"),
            _field(TEIEmbedRequest, "truncation_direction"),
        ),
    )
    openai = create_model(
        "OpenAIEmbeddingRequest",
        __base__=OpenAIEmbeddingRequest,
        dimensions=(dims, _field(OpenAIEmbeddingRequest, "dimensions")),
    )
    return tei, openai


def rerank_request_model(*, left: bool) -> type[TEIRerankRequest]:
    """TEI's rerank body for a reranker that can (or cannot) cut documents from the left.

    Parameters
    ----------
    left
        Whether ``truncation_direction`` Left is possible.
    """
    if left:
        return TEIRerankRequest
    return create_model(
        "TEIRerankRequest",
        __base__=TEIRerankRequest,
        truncation_direction=(
            _direction_type(False, "this reranker (no tokenizer to count its limit)"),
            _field(TEIRerankRequest, "truncation_direction"),
        ),
    )
