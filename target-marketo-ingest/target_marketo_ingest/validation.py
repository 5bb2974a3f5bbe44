"""Per-field checks built once per stream from its SCHEMA and Marketo's describe output.

Records are checked without jsonschema and without parsing timestamps: each field gets one
small converter that checks the schema type, coerces to what Marketo expects and checks the
field's length. That is what lets the bulk path keep up with a bare decode + csv.writer loop.
"""

from __future__ import annotations

import decimal
import typing as t
from dataclasses import dataclass

from marketo_common.fields import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    FieldSpec,
    csv_text,
    json_number,
    parse_describe,
    value_bool,
    value_int,
    value_number,
)

__all__ = ["FieldSpec", "RecordRejected", "build_validator", "parse_describe"]

SDC_PREFIX = "_sdc_"


class RecordRejected(Exception):  # noqa: N818 (an outcome, not a failure)
    """A record that must go to the rejects file; carries the reason and the field."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float, decimal.Decimal),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


def schema_python_types(prop: dict) -> tuple[type, ...] | None:
    """Python types a JSON-schema property allows; None when it does not constrain the type."""
    types: list[str] = []
    raw = prop.get("type")
    if isinstance(raw, str):
        types.append(raw)
    elif isinstance(raw, list):
        types.extend(x for x in raw if isinstance(x, str))
    for key in ("anyOf", "oneOf"):
        for sub in prop.get(key) or []:
            sub_types = schema_python_types(sub) if isinstance(sub, dict) else None
            if sub_types is None:
                return None
            types.extend(name for name, py in _PY_TYPES.items() if set(py) <= set(sub_types))
    if not types:
        return None
    out: list[type] = []
    for name in types:
        out.extend(_PY_TYPES.get(name, ()))
    return tuple(dict.fromkeys(out))


def _bad(reason: str, message: str) -> RecordRejected:
    return RecordRejected(reason, message)


def _coerce(convert: t.Callable[[t.Any], t.Any], value: t.Any) -> t.Any:
    """The shared table's coercion, its ValueError turned into a `type` rejection."""
    try:
        return convert(value)
    except ValueError as exc:
        raise _bad("type", str(exc)) from None


def build_converter(  # noqa: C901
    spec: FieldSpec | None,
    allowed: tuple[type, ...] | None,
    *,
    csv: bool,
) -> t.Callable[[t.Any], t.Any]:
    """One function per field: schema type check, Marketo coercion, length check, rendering.

    Called only for non-null values. Raises RecordRejected with reason `schema_mismatch`,
    `type` or `too_long`.
    """
    allowed_set = frozenset(allowed) if allowed else None
    kind = spec.type if spec else None  # None: no describe, the stream schema alone decides
    max_len = spec.length if spec else None

    def check_schema(value: t.Any) -> None:
        if allowed_set is not None and type(value) not in allowed_set:
            raise _bad(
                "schema_mismatch",
                f"value {_short(value)} is {type(value).__name__}, the stream schema says "
                f"{'/'.join(sorted(x.__name__ for x in allowed_set))}",
            )

    if kind is None or kind.is_text:
        is_date = kind is not None and kind.kind != "text"

        def conv_string(value: t.Any) -> t.Any:
            if type(value) is str:
                if allowed_set is not None and str not in allowed_set:
                    check_schema(value)
                if max_len is not None and len(value) > max_len:
                    raise _bad("too_long", f"{len(value)} characters, the field allows {max_len}")
                return value
            check_schema(value)
            if is_date:
                raise _bad("type", f"expected an ISO 8601 date string, got {value!r}")
            if type(value) in (dict, list):
                if kind is None:
                    return value if not csv else _csv_json(value)
                raise _bad("type", f"expected text, got {type(value).__name__}")
            text = csv_text(value)
            if max_len is not None and len(text) > max_len:
                raise _bad("too_long", f"{len(text)} characters, the field allows {max_len}")
            return text if csv or kind is not None else value

        return conv_string

    if kind is INTEGER:

        def conv_int(value: t.Any) -> t.Any:
            if type(value) is int:
                if allowed_set is not None and int not in allowed_set:
                    check_schema(value)
                return str(value) if csv else value
            check_schema(value)
            if type(value) is bool:
                raise _bad("type", f"expected an integer, got {value!r}")
            number = _coerce(value_int, value)
            return str(number) if csv else number

        return conv_int

    if kind is NUMBER:

        def conv_float(value: t.Any) -> t.Any:
            check_schema(value)
            if type(value) is bool:
                raise _bad("type", f"expected a number, got {value!r}")
            number = _coerce(value_number, value)
            return str(number) if csv else json_number(number)

        return conv_float

    if kind is BOOLEAN:

        def conv_bool(value: t.Any) -> t.Any:
            check_schema(value)
            flag = _coerce(value_bool, value)
            if csv:
                return "" if flag is None else ("true" if flag else "false")
            return flag

        return conv_bool

    def conv_other(value: t.Any) -> t.Any:
        check_schema(value)
        return csv_text(value) if csv else value

    return conv_other


def _csv_json(value: t.Any) -> str:
    import orjson  # noqa: PLC0415

    return orjson.dumps(value, default=str).decode()


def _short(value: t.Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."  # noqa: PLR2004


@dataclass
class Column:
    """One output field: input name, Marketo name, converter, and its common-case shortcut."""

    source: str
    target: str
    convert: t.Callable[[t.Any], t.Any]
    fast_type: str | None = None  # "str", "int" or "bool": values of this type need no call
    max_len: int | None = None


def fast_path(
    spec: FieldSpec | None, allowed: tuple[type, ...] | None
) -> tuple[str | None, int | None]:
    """Which value type a generated row function may pass through inline."""
    native = spec.type.native if spec else str
    if native is None or (allowed is not None and native not in allowed):
        return None, None
    return native.__name__, (spec.length if spec and native is str else None)


def compile_row_function(
    columns: list[Column],
    required: list[tuple[str, int]],
    known: frozenset[str],
    check_keys: t.Callable[[dict], None],
) -> t.Callable[[dict], list[str]]:
    """Generate one function per stream that builds a CSV row with the checks inlined.

    Per-field function calls cost more than the CSV writer itself; the generated code only
    calls a field's converter when the value is not of the field's common type.
    """
    namespace: dict[str, t.Any] = {"RecordRejected": RecordRejected, "known": known}
    namespace["check_keys"] = check_keys
    body = [
        "def to_row(record):",
        "    if not record.keys() <= known: check_keys(record)",
        "    get = record.get",
    ]
    cells = []
    for index, column in enumerate(columns):
        conv = f"conv{index}"
        namespace[conv] = column.convert
        namespace[f"name{index}"] = column.source
        cell = f"c{index}"
        cells.append(cell)
        body.append(f"    v = get({column.source!r})")
        body.append(f"    if v is None: {cell} = ''")
        if column.fast_type == "str":
            limit = f" and len(v) <= {column.max_len}" if column.max_len is not None else ""
            body.append(f"    elif type(v) is str{limit}: {cell} = v")
        elif column.fast_type == "int":
            body.append(f"    elif type(v) is int: {cell} = str(v)")
        elif column.fast_type == "bool":
            body.append(f"    elif v is True: {cell} = 'true'")
            body.append(f"    elif v is False: {cell} = 'false'")
        body.append("    else:")
        body.append(f"        try: {cell} = {conv}(v)")
        body.append("        except RecordRejected as exc:")
        body.append(f"            exc.field = name{index}")
        body.append("            raise")
    for target, index in required:
        body.append(f"    if c{index} == '':")
        body.append(
            f"        raise RecordRejected('missing_key_field', "
            f"{('required field ' + repr(target) + ' is empty')!r}, {target!r})"
        )
    body.append(f"    return [{', '.join(cells)}]")
    exec("\n".join(body), namespace)  # noqa: S102 (code built from repr() literals only)
    return namespace["to_row"]


class RecordValidator:
    """Turns a record into a CSV row (list of str) or a JSON object for Marketo, or rejects it.

    `columns` are decided once at SCHEMA time; `known` is every input key that is allowed
    (columns, control fields such as programId/statusName, `_sdc_*`, and fields dropped by
    `unknown_fields=drop` or as not updateable).
    """

    def __init__(
        self,
        columns: list[Column],
        *,
        known: set[str],
        required: list[str],
        unknown_fields: str,
        csv: bool,
    ) -> None:
        self.columns = columns
        self.header = [c.target for c in columns]
        self._pairs = [(c.source, c.convert) for c in columns]
        self._known = frozenset(known)
        self._unknown_drop = unknown_fields == "drop"
        self._csv = csv
        index = {c.target: i for i, c in enumerate(columns)}
        self._required = [(name, index[name]) for name in required if name in index]
        self.missing_required = [name for name in required if name not in index]
        self.dropped_unknown: set[str] = set()
        if csv:
            self.to_row = compile_row_function(  # type: ignore[method-assign]
                columns, self._required, self._known, self.check_keys
            )

    def check_keys(self, record: dict) -> None:
        """Reject (or note) input keys that are neither in the schema nor in Marketo."""
        if record.keys() <= self._known:
            return
        extra = sorted(
            k
            for k in record
            if k not in self._known and record[k] is not None and not k.startswith(SDC_PREFIX)
        )
        if not extra:
            return
        if self._unknown_drop:
            self.dropped_unknown.update(extra)
            return
        raise RecordRejected(
            "unknown_field",
            f"field '{extra[0]}' is not in the stream schema or not a Marketo field "
            "(set unknown_fields=drop or map it with field_map)",
            extra[0],
        )

    def to_row(self, record: dict) -> list[str]:
        """CSV cells in header order; raises RecordRejected (replaced by generated code)."""
        raise NotImplementedError(record)

    def to_object(self, record: dict) -> dict:
        """Marketo-named JSON object of the keys the record carries; raises RecordRejected."""
        self.check_keys(record)
        out: dict[str, t.Any] = {}
        name = ""
        try:
            for column in self.columns:
                name = column.source
                if name in record:
                    value = record[name]
                    out[column.target] = None if value is None else column.convert(value)
        except RecordRejected as exc:
            exc.field = name
            raise
        for target, _ in self._required:
            if out.get(target) in (None, ""):
                raise RecordRejected(
                    "missing_key_field", f"required field '{target}' is empty", target
                )
        return out


def build_validator(  # noqa: C901
    *,
    stream: str,
    schema: dict,
    describe: dict[str, FieldSpec] | None,
    field_map: dict[str, str],
    control: set[str],
    required: list[str],
    unknown_fields: str,
    csv: bool,
    send_only: set[str] | None = None,
    logger: t.Any = None,
) -> RecordValidator:
    """Decide the columns of a stream once, from its SCHEMA and the describe output.

    Raises SettingError-like `ValueError` subclasses through the caller: unknown schema
    fields with `unknown_fields=error` and missing key fields are errors at SCHEMA time,
    naming the stream and the field.
    """
    from target_marketo_ingest.errors import InputError  # noqa: PLC0415

    props: dict = schema.get("properties") or {}
    known: set[str] = set(control)
    columns: list[Column] = []
    not_updateable: list[str] = []
    not_sent: list[str] = []
    for name, prop in props.items():
        if name.startswith(SDC_PREFIX) or name in control:
            known.add(name)
            continue
        known.add(name)
        target = field_map.get(name, name)
        if send_only is not None and target not in send_only and target not in required:
            not_sent.append(name)
            continue
        spec = describe.get(target) if describe is not None else None
        if describe is not None and spec is None:
            if unknown_fields == "drop":
                if logger:
                    logger.warning(
                        "Stream '%s': field '%s' is not a Marketo field; dropped "
                        "(unknown_fields=drop)",
                        stream,
                        name,
                    )
                continue
            raise InputError(
                f"'{target}' is not a Marketo field for this write method "
                "(set unknown_fields=drop, or rename it with field_map)",
                stream=stream,
                field=name,
            )
        if spec is not None and not spec.updateable and target not in required:
            not_updateable.append(name)
            continue
        allowed = schema_python_types(prop) if isinstance(prop, dict) else None
        fast_type, max_len = fast_path(spec, allowed)
        columns.append(
            Column(name, target, build_converter(spec, allowed, csv=csv), fast_type, max_len)
        )
    if logger and not_updateable:
        logger.info(
            "Stream '%s': not updateable in Marketo, not sent: %s",
            stream,
            ", ".join(not_updateable),
        )
    if logger and not_sent:
        logger.info(
            "Stream '%s': not used by this write method, not sent: %s", stream, ", ".join(not_sent)
        )
    validator = RecordValidator(
        columns, known=known, required=required, unknown_fields=unknown_fields, csv=csv
    )
    if validator.missing_required:
        missing = validator.missing_required[0]
        source = next((k for k, v in field_map.items() if v == missing), missing)
        raise InputError(
            f"the schema has no field '{source}', needed as the key field '{missing}' "
            "(check lookup_field/dedupe_fields/field_map in the streams setting)",
            stream=stream,
            field=source,
        )
    return validator
