"""What the OpenAPI document (``/schema/openapi.json``) states beyond the Python types: the
constraints the engine enforces, so that a client generated from it sends only what is
accepted.

Two kinds of constraint are declared:

- **decoded** ones, which msgspec or Litestar check while reading the request (``msgspec.Meta``
  limits, ``UUID``, enums): breaking them answers 400;
- **stated** ones (``stated``/``documented``), which the domain checks after decoding and
  answers as docs/api.md promises (422 ``Invalid order``, 404 for an unknown projection, 403 for
  a changed download link…); the document states them with the same limits, from the same
  constants.

Patterns spell their character classes out (``[0-9]``, never ``\\d``/``\\s``/``\\w``): the
document's patterns are ECMAScript's, the engine's Python's, and only explicit classes read the
same in both.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import msgspec

# The struct plugin is not exported by Litestar; it is extended, not re-implemented.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.exceptions import ValidationException
from litestar.openapi.spec import Schema
from litestar.params import QueryParameter
from litestar.plugins import OpenAPISchemaPluginProtocol
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

MAX_LIMIT = 200  # the largest page a list answers (projections.queries.MAX_LIMIT)
DIGITS_PATTERN = r"^[0-9]+$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*={0,2}$"  # URL-safe base64, as next_cursor is written
NO_NUL_PATTERN = r"^[^\x00]*$"


def stated(description: str | None = None, **schema: Any) -> dict[str, Any]:
    """``extra_json_schema`` for a ``msgspec.Meta``: ``schema`` (Litestar ``Schema`` field names:
    ``minimum``, ``max_items``, ``pattern``, ``one_of``, …) goes into the OpenAPI document
    without msgspec enforcing it: the engine checks it after decoding, with its own answer."""
    extra: dict[str, Any] = {"extra": schema}
    if description:
        extra["description"] = description
    return extra


def documented(description: str | None = None, **schema: Any) -> msgspec.Meta:
    """A ``msgspec.Meta`` carrying only ``stated`` constraints."""
    return msgspec.Meta(extra_json_schema=stated(description, **schema))


def query(description: str, **schema: Any) -> Any:
    """A query parameter with a description and constraints that the document states (the
    handler enforces them, or they describe a range the handler clamps to)."""
    return QueryParameter(description=description, schema_extra=schema or None)


Limit: TypeAlias = Annotated[
    int,
    QueryParameter(
        description=f"page size, 1 to {MAX_LIMIT}; any other value answers 400",
        ge=1,
        le=MAX_LIMIT,
        schema_extra={"minimum": 1, "maximum": MAX_LIMIT},  # as integers (``ge``: floats)
    ),
]
"""``?limit=`` of every list: decoded, so the bounds the document states are the ones enforced."""
Cursor: TypeAlias = Annotated[
    str | None,
    query(
        "the next_cursor of the previous page; any other value answers 400",
        one_of=None,
        type="string",
        pattern=CURSOR_PATTERN,
    ),
]


def time_filter(description: str) -> Any:
    """A list filter that is an ISO 8601 / RFC 3339 time (``parse_instant``)."""
    return query(description, one_of=None, type="string", format="date-time")


# RFC 3339 parts ``datetime.fromisoformat`` does not take: a lower-case "z", a leap second
_UTC_SUFFIX = re.compile(r"[Zz]\Z")
_LEAP_SECOND = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}.[0-9]{2}:[0-9]{2}):60")


def parse_instant(text: str, name: str, expected: str = "an ISO 8601 time") -> datetime:
    """An ISO 8601 time as ``datetime.fromisoformat`` reads it, and the RFC 3339 forms it does
    not (``z``; a leap second, read as the minute's last microsecond); without an offset, UTC.
    Anything else answers 400 naming the parameter ``name``."""
    normalised = _UTC_SUFFIX.sub("+00:00", text)
    leap = _LEAP_SECOND.match(normalised)
    if leap:
        normalised = f"{leap.group(1)}:59.999999{_drop_fraction(normalised[leap.end() :])}"
    try:
        instant = datetime.fromisoformat(normalised)
    except ValueError:
        raise ValidationException(
            f"{name} must be {expected}",
            extra=[{"key": name, "message": f"not {expected}"}],
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _drop_fraction(rest: str) -> str:
    """What follows the seconds of a time, without its fraction of a second."""
    return re.sub(r"^\.[0-9]+", "", rest)


def text_filter(description: str) -> Any:
    """A list filter compared as text; a NUL character, which no column holds, answers 400."""
    return query(description, one_of=None, type="string", pattern=NO_NUL_PATTERN)


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """msgspec structs as Litestar documents them, plus ``additionalProperties: false`` for
    those that refuse unknown fields (``forbid_unknown_fields=True``, answered 400), and a
    field that may be left out (``msgspec.UNSET``) as its plain type (Litestar wraps it in a
    ``oneOf`` of that one type)."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False
        properties = schema.properties or {}
        for name, field in properties.items():
            if isinstance(field, Schema) and field.one_of and _only_one_of(field):
                properties[name] = field.one_of[0]
        return schema


def _only_one_of(schema: Schema) -> bool:
    """Whether ``schema`` is a ``oneOf`` of one schema and says nothing else."""
    return len(schema.one_of or ()) == 1 and dataclasses.replace(schema, one_of=None) == Schema()


OPENAPI_PLUGINS: list[OpenAPISchemaPluginProtocol] = [StrictStructSchemaPlugin()]
