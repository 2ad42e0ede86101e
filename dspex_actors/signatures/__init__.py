"""Signatures: typed input/output fields plus instructions, in DSPy's class and string forms.

``parse_value`` / ``format_value`` read LM text as a field's type and write values into
prompts, as DSPy 3.4.1 does.
"""

from dspex_actors.signatures._coerce import format_value, loads_tolerant, parse_value, to_jsonable
from dspex_actors.signatures._field import (
    FieldInfo,
    FieldKind,
    InputField,
    OutputField,
    infer_prefix,
)
from dspex_actors.signatures._history import History
from dspex_actors.signatures._signature import (
    RESERVED_FIELD_NAMES,
    Signature,
    SignatureMeta,
    ensure_signature,
    make_signature,
    rebuild_signature,
)
from dspex_actors.signatures._types import (
    annotation_allows_none,
    annotation_name,
    contains_model,
    is_model_type,
    json_schema,
    parse_annotation,
    type_adapter,
)

__all__ = [
    "RESERVED_FIELD_NAMES",
    "FieldInfo",
    "FieldKind",
    "History",
    "InputField",
    "OutputField",
    "Signature",
    "SignatureMeta",
    "annotation_allows_none",
    "annotation_name",
    "contains_model",
    "ensure_signature",
    "format_value",
    "infer_prefix",
    "is_model_type",
    "json_schema",
    "loads_tolerant",
    "make_signature",
    "parse_annotation",
    "parse_value",
    "rebuild_signature",
    "to_jsonable",
    "type_adapter",
]
