"""The JSON Schema reference check, for tests only: ``jsonschema`` (a dev dependency) on the schema files.

The product checks every received message with :func:`edge.contract.wire.check_payload` (schemas
compiled once, integers that must be JSON integers); the tests use this independent
implementation to check what the product publishes and to compare the two checkers.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema

from edge.contract.protocol import load_schema


@cache
def validator(topic: str) -> jsonschema.Draft202012Validator:
    """A Draft 2020-12 validator for ``topic``'s schema (the schema itself checked first), built once."""
    schema = load_schema(topic)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate(topic: str, payload: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``payload`` breaks the ``topic`` schema."""
    validator(topic).validate(dict(payload))
