"""The site mapping (`mapping.yaml`) and the row mapper built from it.

`load_mapping` reads and validates the file (see docs/edge-pipeline.md for the
format); every error names the file, the table entry and the field. A
`RowMapper` is compiled once per source table against the columns it actually
has and turns each `SourceRow` into a `MappedRecord` or a `Rejection`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_node.pipeline.records import MappedRecord, Rejection, SourceRow
from edge_node.pipeline.targets import TARGETS, Target, TargetField
from edge_node.pipeline.units import (
    UnitConverter,
    UnitError,
    is_known_unit,
    normalize_dose_unit,
)
from edge_node.pipeline.values import (
    DEFAULT_VALUE_MAPS,
    DateParser,
    EnumMap,
    ParseError,
    parse_number,
    parse_range,
)
from shared_cdm.errors import InvalidInput
from shared_cdm.vocab import (
    Analyte,
    Vocabulary,
    alias_key,
    fold,
    normalize_atc,
    normalize_icd9cm3,
    normalize_icd10,
)
from shared_cdm.vocab.codes import icd10_key

SourceKind = Literal["sql", "csv", "fhir", "hl7v2", "lab_sheets"]
# fields whose spec may carry a fixed `unit`
_UNIT_FIELDS = {
    ("lab", "value"),
    ("lab", "unit"),
    ("medication", "dose"),
    ("medication", "dose_unit"),
}
# text fields whose spec may carry a `codes` map (name -> code)
_NAMED_CODE_FIELDS = {("medication", "drug_name"), ("operation", "operation_name")}
# values an LIS writes for "no result": all nines (9999, 99999.9)
_SENTINEL = re.compile(r"9{4,}(?:\.[09]*)?")
_CACHE_LIMIT = 100_000


def _scalar_keys(value: Any, what: str) -> Any:
    """YAML reads `1: dead` with an int key and `yes: x` with a bool key; value
    and code maps compare text, so keys become strings (booleans are refused:
    the written value is lost)."""
    if not isinstance(value, Mapping):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(key, bool) or isinstance(item, bool):
            raise ValueError(
                f"{what}: YAML read an unquoted yes/no/on/off/y/n as true/false; quote it"
            )
        if item is None:
            raise ValueError(f"{what}: {key!r} maps to nothing")
        result[str(key)] = str(item) if isinstance(item, int | float) else item
    return result


def _text_of_number(value: Any) -> Any:
    """YAML reads `version: 3` or `column: 2021` as numbers; they are names."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class FieldSpec(BaseModel):
    """How one target field is read: a column (or aliases tried in order), value
    and code maps, date formats, a fixed unit, a constant default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | None = None
    aliases: tuple[str, ...] = ()
    values: dict[str, str] = Field(default_factory=dict)
    codes: dict[str, str] = Field(default_factory=dict)
    date_format: tuple[str, ...] = ()
    unit: str | None = None
    default: str | None = None

    @field_validator("values", "codes", mode="before")
    @classmethod
    def _map_keys(cls, value: Any) -> Any:
        return _scalar_keys(value, "value map")

    @field_validator("date_format", "aliases", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("default", "column", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        return _text_of_number(value)


class TableMapping(BaseModel):
    """One source table (or file) feeding one target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    table: str
    target: str
    key: str
    watermark: str | None = None
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    analyte_codes: dict[str, str] = Field(default_factory=dict)  # item code or name -> analyte
    default_units: dict[str, str] = Field(default_factory=dict)  # analyte -> unit

    @field_validator("source", "table", "key", "watermark", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _text_of_number(value)

    @field_validator("watermark")
    @classmethod
    def _no_watermark_column_yet(cls, value: str | None) -> str | None:
        # Accepting it silently would let an operator believe edited rows are re-read.
        if value is not None:
            raise ValueError(
                "reading by a watermark column is not supported yet: remove `watermark` "
                "(tables are read in `key` order; `oncofed-edge sync --full` re-reads all)"
            )
        return value

    @field_validator("fields", mode="before")
    @classmethod
    def _bare_columns(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return {k: {"column": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("analyte_codes", "default_units", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        return {} if value is None else _scalar_keys(value, "code map")

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in TARGETS:
            raise ValueError(f"unknown target {value!r}; one of {', '.join(TARGETS)}")
        return value

    @model_validator(mode="after")
    def _fields_fit_target(self) -> TableMapping:
        spec = TARGETS[self.target]
        for name, field in self.fields.items():
            target_field = spec.by_name.get(name)
            if target_field is None:
                raise ValueError(
                    f"fields.{name}: {self.target} has no field {name!r}; "
                    f"its fields are {', '.join(spec.by_name)}"
                )
            _check_field(self.target, target_field, field)
        if self.target != "lab" and (self.analyte_codes or self.default_units):
            raise ValueError("analyte_codes and default_units are for target lab only")
        return self

    @property
    def label(self) -> str:
        """`emr.diagnosis -> diagnosis`, for messages."""
        return f"{self.source}.{self.table} -> {self.target}"

    @property
    def target_spec(self) -> Target:
        return TARGETS[self.target]


def _check_field(target: str, field: TargetField, spec: FieldSpec) -> None:
    where = f"fields.{field.name}"
    if spec.date_format and field.type not in ("date", "datetime"):
        raise ValueError(f"{where}: date_format given for a {field.type} field")
    for fmt in spec.date_format:
        if fmt not in ("dmy", "mdy") and "%" not in fmt:
            raise ValueError(f"{where}: date_format {fmt!r} is not a strftime pattern")
    if spec.unit is not None:
        if (target, field.name) not in _UNIT_FIELDS:
            raise ValueError(f"{where}: a fixed unit is only for lab value/unit and doses")
        if target == "lab" and not is_known_unit(spec.unit):
            raise ValueError(f"{where}: unknown unit {spec.unit!r}")
    if spec.codes and field.type != "code" and (target, field.name) not in _NAMED_CODE_FIELDS:
        raise ValueError(f"{where}: a code map is for code fields, not a {field.type} field")
    if field.type == "enum":
        wrong = sorted({v for v in spec.values.values() if v not in field.values})
        if wrong:
            raise ValueError(
                f"{where}: values map to {wrong}; allowed are {', '.join(field.values)}"
            )
        if spec.default is not None and spec.default not in field.values:
            raise ValueError(f"{where}: default {spec.default!r} is not an allowed value")
    if spec.column is not None and spec.aliases:
        raise ValueError(f"{where}: give either column or aliases, not both")


class SourceSpec(BaseModel):
    """A source system: its name in the mapping and what the connector needs."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    kind: SourceKind
    url: str | None = None  # sql: any SQLAlchemy URL
    schema_: str | None = Field(default=None, alias="schema")  # sql
    path: str | None = None  # csv, fhir, hl7v2: a file, a folder or a glob
    encoding: str | None = None  # csv, hl7v2: a codec name or "auto"
    delimiter: str | None = None  # csv
    index: str | None = None  # lab_sheets: the scan index (CSV)
    folder: str | None = None  # lab_sheets: the folder of scanned sheets
    file_column: str | None = None  # lab_sheets: the index column naming the file

    @model_validator(mode="after")
    def _location(self) -> SourceSpec:
        if self.kind == "sql" and not self.url:
            raise ValueError(f"source {self.name!r}: kind sql needs a url")
        if self.kind == "lab_sheets" and not (self.index and self.folder):
            raise ValueError(f"source {self.name!r}: kind lab_sheets needs an index and a folder")
        if self.kind not in ("sql", "lab_sheets") and not self.path:
            raise ValueError(f"source {self.name!r}: kind {self.kind} needs a path")
        allowed = _SOURCE_KEYS[self.kind]
        given = {k for k, v in self.options().items() if k != "kind" and v is not None}
        if given - allowed:
            raise ValueError(
                f"source {self.name!r}: {', '.join(sorted(given - allowed))} does not apply "
                f"to kind {self.kind} (it takes {', '.join(sorted(allowed))})"
            )
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError(f"source {self.name!r}: delimiter must be one character")
        return self

    def options(self) -> dict[str, Any]:
        """The spec as written (kind, url or path, ...; no name), for
        `connectors.open_connector`, which resolves relative paths itself."""
        return self.model_dump(exclude={"name"}, exclude_none=True, by_alias=True)

    @property
    def raw(self) -> dict[str, Any]:
        return self.options()

    def resolved(self, base_dir: Path) -> dict[str, Any]:
        """`options()` with a relative path, or relative SQLite file, made
        absolute against `base_dir` (the mapping file's folder)."""
        raw = self.options()
        for key in ("path", "index", "folder"):
            if raw.get(key) is not None and not Path(raw[key]).is_absolute():
                raw[key] = str(base_dir / raw[key])
        if self.url is not None and (m := re.fullmatch(r"(sqlite(?:\+\w+)?:///)(.+)", self.url)):
            prefix, file = m.groups()
            if file != ":memory:" and not Path(file).is_absolute():
                raw["url"] = prefix + str(base_dir / file)
        return raw


_SOURCE_KEYS: dict[str, set[str]] = {
    "sql": {"url", "schema"},
    "csv": {"path", "encoding", "delimiter"},
    "fhir": {"path"},
    "hl7v2": {"path", "encoding"},
    "lab_sheets": {"index", "folder", "encoding", "file_column"},
}


class Extraction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    icd10_ranges: tuple[str, ...] = ("C00-D48",)

    @field_validator("icd10_ranges")
    @classmethod
    def _ranges(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            low, _, high = spec.partition("-")
            try:
                if icd10_key(low) > icd10_key(high or low, upper=True):
                    raise ValueError(f"range {spec!r} runs backwards")
            except InvalidInput:
                raise ValueError(f"{spec!r} is not an ICD-10 code or range") from None
        return value


class SiteMapping(BaseModel):
    """A whole `mapping.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str
    version: str
    extraction: Extraction = Field(default_factory=Extraction)
    sources: dict[str, SourceSpec]
    tables: tuple[TableMapping, ...] = ()
    _path: Path | None = PrivateAttr(default=None)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return _text_of_number(value)

    @field_validator("sources", mode="before")
    @classmethod
    def _named_sources(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        return {
            name: {"name": name, **spec} if isinstance(spec, Mapping) else spec
            for name, spec in value.items()
        }

    @model_validator(mode="after")
    def _tables_name_sources(self) -> SiteMapping:
        seen: set[tuple[str, str, str]] = set()
        for index, table in enumerate(self.tables):
            if table.source not in self.sources:
                raise ValueError(
                    f"tables[{index}] ({table.label}): source {table.source!r} is not "
                    f"under sources ({', '.join(self.sources) or 'none'})"
                )
            identity = (table.source, table.table, table.target)
            if identity in seen:
                raise ValueError(f"tables[{index}] ({table.label}) is mapped twice")
            seen.add(identity)
        return self

    @property
    def icd10_ranges(self) -> tuple[str, ...]:
        """Who is a cancer patient (`extraction.icd10_ranges`)."""
        return self.extraction.icd10_ranges

    @property
    def path(self) -> Path | None:
        """The file this mapping was read from, if any."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """Relative source paths are resolved against this folder."""
        return self._base_dir

    def fingerprint(self) -> str:
        """SHA-256 of the content (not the file's bytes: comments, key order and
        layout do not change it)."""
        content = json.dumps(
            self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(content.encode("utf-8")).hexdigest()


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML
    would silently keep the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,
)


def parse_mapping(
    text: str, *, path: Path | str | None = None, base_dir: Path | str | None = None
) -> SiteMapping:
    """A mapping from YAML text; `path` names it in errors, `base_dir` (default:
    the folder of `path`, else the working directory) anchors relative sources."""
    name = str(path) if path is not None else "<mapping>"
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(
            f"{name}{line}: not valid YAML: {problem}", code="invalid_mapping"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{name}: a mapping file is a YAML mapping", code="invalid_mapping")
    try:
        mapping = SiteMapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, data) for error in exc.errors())
        raise InvalidInput(f"{name}: {problems}", code="invalid_mapping") from None
    if path is not None:
        mapping._path = Path(path)
    if base_dir is not None:
        mapping._base_dir = Path(base_dir)
    elif path is not None:
        mapping._base_dir = Path(path).resolve().parent
    return mapping


def load_mapping(path: Path | str) -> SiteMapping:
    """Read and validate a `mapping.yaml`; InvalidInput names what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"{path}: cannot read the mapping ({exc})", code="invalid_mapping"
        ) from exc
    return parse_mapping(text, path=path)


def _describe(error: Any, data: dict[str, Any]) -> str:
    """One pydantic error as `tables[2] (emr.diagnosis): fields.sex.values: ...`."""
    loc = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
    where = []
    if len(loc) >= 2 and loc[0] == "tables" and isinstance(loc[1], int):
        entry: Any = (data.get("tables") or [None] * (loc[1] + 1))[loc[1]]
        label = ""
        if isinstance(entry, Mapping):
            label = f" ({entry.get('source', '?')}.{entry.get('table', '?')})"
        where.append(f"tables[{loc[1]}]{label}")
        loc = loc[2:]
    elif len(loc) >= 2 and loc[0] == "sources":
        where.append(f"sources.{loc[1]}")
        loc = loc[2:]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
        loc = loc[:-1]
    elif error["type"] == "missing":
        message = f"{loc[-1]!r} is required"
        loc = loc[:-1]
    if loc:
        where.append(".".join(str(part) for part in loc))
    return f"{': '.join(where)}: {message}" if where else message


# --- row mapping ------------------------------------------------------------

Converter = Callable[[str], Any]
# a target's last step: fills derived fields in place, or rejects the row
Finisher = Callable[[SourceRow, dict[str, Any]], Rejection | None]


def _value_map(values: Mapping[str, str], inner: Converter | None) -> Converter:
    folded = {fold(k): v for k, v in values.items()}

    def convert(text: str) -> Any:
        mapped = folded.get(fold(text), text)
        return inner(mapped) if inner is not None else mapped

    return convert


def _number(text: str) -> float:
    return parse_number(text)[0]


def _cached(func: Callable[[str], Any]) -> Callable[[str], Any]:
    """Memoise a one-string function, failures (InvalidInput) included."""
    cache: dict[str, Any] = {}

    def call(text: str) -> Any:
        found = cache.get(text, cache)
        if found is cache:
            try:
                found = func(text)
            except InvalidInput as exc:
                found = exc
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[text] = found
        if isinstance(found, InvalidInput):
            raise found
        return found

    return call


class RowMapper:
    """Maps the rows of one source table, compiled against its actual columns.

    `resolved` tells which column feeds each target field (explicit columns and
    aliases first, then the target's default aliases, compared folded). A
    required field with no column raises InvalidInput at construction.
    """

    def __init__(
        self, table_mapping: TableMapping, columns: Sequence[str], vocab: Vocabulary
    ) -> None:
        self.mapping = table_mapping
        self.target: Target = table_mapping.target_spec
        self.columns = list(columns)
        self.vocab = vocab
        self._source, self._table = table_mapping.source, table_mapping.table
        self._target_name = self.target.name
        self.resolved: dict[str, str] = self._resolve()
        specs = table_mapping.fields
        defaults = {name: spec.default for name, spec in specs.items() if spec.default is not None}
        for f in self.target.fields:  # an enum with "unknown" says so when the row is silent
            if f.type == "enum" and "unknown" in f.values:
                defaults.setdefault(f.name, "unknown")
        self._check_complete(defaults)
        hooked = _HOOKED.get(self.target.name, set())
        # plain text fields (most ids) take a shorter path than converted ones
        self._plain: list[tuple[str, str]] = []
        self._plan: list[tuple[str, str | None, Converter | None, str | None]] = []
        for f in self.target.fields:
            column = self.resolved.get(f.name)
            if f.name in hooked or (column is None and f.name not in defaults):
                continue
            convert = self._converter(f, specs.get(f.name, FieldSpec()))
            if convert is None and column is not None and f.name not in defaults:
                self._plain.append((f.name, column))
            else:
                self._plan.append((f.name, column, convert, defaults.get(f.name)))
        self._required = tuple(
            f.name for f in self.target.fields if f.required and f.name not in hooked
        )
        self._links = tuple(n for n in self.target.links if n in self.resolved or n in defaults)
        self._extras: tuple[str, ...] = _EXTRAS.get(self.target.name, ())
        self._template = dict.fromkeys([*(f.name for f in self.target.fields), *self._extras])
        self._finish: Finisher | None = None
        if self.target.name == "lab":
            self._finish = self._compile_lab()
        elif self.target.name == "diagnosis":
            self._finish = self._compile_diagnosis()
        elif self.target.name == "medication":
            self._finish = self._compile_medication()
        elif self.target.name == "operation":
            self._finish = self._compile_operation()
        elif self.target.name == "follow_up":
            self._finish = self._compile_follow_up()

    # -- compilation ---------------------------------------------------------

    def _where(self) -> str:
        return f"table {self.mapping.label}"

    def _resolve(self) -> dict[str, str]:
        """Target field -> column: named columns first (exact, else folded),
        then each field's aliases; a default alias never takes a column the
        mapping gave to another field."""
        by_key: dict[str, str] = {}
        for name in self.columns:
            by_key.setdefault(alias_key(name), name)
        resolved: dict[str, str] = {}
        for name, named in self.mapping.fields.items():
            if named.column is None:
                continue
            column = (
                named.column
                if named.column in self.columns
                else by_key.get(alias_key(named.column))
            )
            if column is None:
                raise InvalidInput(
                    f"{self._where()}: column {named.column!r} of field {name} is not in "
                    f"the table; its columns are {', '.join(self.columns)}",
                    code="invalid_mapping",
                )
            resolved[name] = column
        claimed = set(resolved.values())
        for f in self.target.fields:
            spec = self.mapping.fields.get(f.name)
            if f.name in resolved:
                continue
            if spec is not None and spec.aliases:
                candidates, own = spec.aliases, True
            elif spec is not None and spec.default is not None:
                continue  # a constant for every row
            else:
                candidates, own = f.aliases, False
            for alias in candidates:
                column = by_key.get(alias_key(alias))
                if column is not None and (own or column not in claimed):
                    resolved[f.name] = column
                    break
        return resolved

    def _check_complete(self, defaults: Mapping[str, str]) -> None:
        missing = [
            f.name
            for f in self.target.fields
            if f.required and f.name not in self.resolved and f.name not in defaults
        ]
        if self.target.name == "diagnosis" and not {"icd10", "diagnosis_text"} & set(self.resolved):
            missing.append("icd10 or diagnosis_text")
        if not any(n in self.resolved or n in defaults for n in self.target.links):
            missing.append(" or ".join(self.target.links))
        if missing:
            raise InvalidInput(
                f"{self._where()}: no column for required field(s) {', '.join(missing)}; "
                f"the table has columns {', '.join(self.columns) or '(none)'}; name them under "
                "fields in the mapping",
                code="invalid_mapping",
            )

    def _converter(self, f: TargetField, spec: FieldSpec) -> Converter | None:
        inner: Converter | None
        if f.type == "date":
            inner = DateParser(spec.date_format)
        elif f.type == "datetime":
            inner = DateParser(spec.date_format, as_date=False)
        elif f.type == "number":
            inner = _number
        elif f.type == "enum":
            inner = EnumMap(f.name, f.values, spec.values, DEFAULT_VALUE_MAPS.get(f.name))
            return inner  # the value map is part of the enum
        elif (self.target.name, f.name) == ("medication", "dose_unit"):
            inner = _cached(normalize_dose_unit)
        else:
            inner = None
        mapping = spec.codes or spec.values
        return _value_map(mapping, inner) if mapping else inner

    # -- mapping -------------------------------------------------------------

    def map(self, row: SourceRow) -> MappedRecord | Rejection:
        """The row as a typed record of the target, or why it cannot be one."""
        values = row.values
        fields = self._template.copy()
        for name, plain in self._plain:
            text = values.get(plain)
            if text is not None:
                fields[name] = text.strip() or None
        name = ""
        try:
            # an absent column is None, and values.get(None) is None: no branch
            for name, column, convert, default in self._plan:
                text = values.get(column)  # type: ignore[arg-type]
                if text is not None:
                    text = text.strip()
                if not text:
                    if default is None:
                        continue
                    text = default
                fields[name] = text if convert is None else convert(text)
        except ParseError as exc:
            return self._reject(row, exc.code, exc.reason, name)
        for name in self._required:
            if fields[name] is None:
                return self._reject(row, "missing_required", f"{name} is empty", name)
        for name in self._links:
            if fields[name] is not None:
                break
        else:
            if self._links:
                links = " and ".join(self._links)
                return self._reject(row, "missing_required", f"{links} are empty", self._links[0])
        if self._finish is not None:
            rejection = self._finish(row, fields)
            if rejection is not None:
                return rejection
        return MappedRecord(self._target_name, self._source, self._table, row.key, fields)

    def _reject(self, row: SourceRow, code: str, reason: str, field: str | None) -> Rejection:
        column = self.resolved.get(field or "")
        where = f"{field} ({column})" if column and column != field else field
        return Rejection(
            self._source,
            self._table,
            row.key,
            code,
            f"{where}: {reason}" if where else reason,
            field,
            dict(row.values),
        )

    def _text(self, field: str) -> Callable[[dict[str, str | None]], str | None]:
        """A reader of one field's stripped raw text, or its default (None if
        both are empty or absent)."""
        column = self.resolved.get(field)
        spec = self.mapping.fields.get(field)
        default = spec.default if spec is not None else None
        if column is None:
            return lambda values: default

        def read(values: dict[str, str | None]) -> str | None:
            text = values.get(column)
            return (text.strip() or default) if text is not None else default

        return read

    # -- lab -----------------------------------------------------------------

    def _compile_lab(self) -> Finisher:
        """The lab step, written for speed (it runs for every LIS row): the
        analyte per distinct (item code, item name), the factor per (analyte,
        unit) and the converted range per (analyte, unit, range) are cached."""
        specs, vocab, resolved = self.mapping.fields, self.vocab, self.resolved
        converter = UnitConverter(vocab)
        item_codes = {
            fold(k): self._analyte_named(v) for k, v in self.mapping.analyte_codes.items()
        }
        default_units: dict[str, str] = {}
        for code, unit in self.mapping.default_units.items():
            analyte = self._analyte_named(code)
            try:
                converter.factor(analyte.code, unit)
            except UnitError as exc:
                raise InvalidInput(
                    f"{self._where()}: default_units.{code}: {exc.message}", code="invalid_mapping"
                ) from None
            default_units[analyte.code] = unit
        fixed_unit = next(
            (specs[n].unit for n in ("value", "unit") if n in specs and specs[n].unit), None
        )
        c_value, c_unit = resolved.get("value"), resolved.get("unit")
        c_code, c_name = resolved.get("item_code"), resolved.get("item_name")
        c_range = resolved.get("reference_range")
        d_value, d_unit, d_code, d_name, d_range = (
            specs[n].default if n in specs else None
            for n in ("value", "unit", "item_code", "item_name", "reference_range")
        )
        inf = float("inf")
        analytes: dict[tuple[str | None, str | None], _LabAnalyte | None] = {}
        factors: dict[tuple[str, str], float] = {}
        ranges: dict[tuple[str, str, str], tuple[float | None, float | None]] = {}

        def find(code: str | None, name: str | None) -> _LabAnalyte | None:
            hit = None
            for text in (code, name):
                if hit is None and text is not None:
                    hit = item_codes.get(fold(text))
            for text in (name, code):
                if hit is None and text is not None:
                    hit = vocab.analyte_by_alias(text)
            if hit is None:
                return None
            low, high = hit.plausible_low, hit.plausible_high
            return _LabAnalyte(
                hit.code,
                hit.standard_unit,
                hit.loinc,
                -inf if low is None else low,
                inf if high is None else high,
                default_units.get(hit.code),
            )

        def finish(row: SourceRow, fields: dict[str, Any]) -> Rejection | None:
            values = row.values
            code = values.get(c_code)  # type: ignore[arg-type]
            code = (code.strip() or d_code) if code is not None else d_code
            name = values.get(c_name)  # type: ignore[arg-type]
            name = (name.strip() or d_name) if name is not None else d_name
            analyte = analytes.get((code, name), _MISSING)
            if analyte is _MISSING:
                if len(analytes) >= _CACHE_LIMIT:
                    analytes.clear()
                analyte = analytes[(code, name)] = find(code, name)
            written = values.get(c_value)  # type: ignore[arg-type]
            if written is not None:
                written = written.strip()
            if not written:
                if d_value is None:
                    return self._reject(row, "missing_value", "no result", "value")
                written = d_value
            if analyte is None:
                return self._reject(
                    row, "unknown_analyte", f"no analyte named {name or code!r}", "item_name"
                )
            try:
                value, operator = parse_number(written)
            except ParseError as exc:
                return self._reject(row, exc.code, exc.reason, "value")
            unit_written = values.get(c_unit)  # type: ignore[arg-type]
            unit_written = (unit_written.strip() or d_unit) if unit_written is not None else d_unit
            unit = fixed_unit or unit_written or analyte.default_unit
            if unit is None:
                return self._reject(
                    row, "missing_unit", f"{analyte.code}: no unit and no default unit", "unit"
                )
            factor = factors.get((analyte.code, unit))
            if factor is None:
                try:
                    factor = converter.factor(analyte.code, unit)
                except UnitError as exc:
                    return self._reject(row, exc.code, exc.message, "unit")
                factors[(analyte.code, unit)] = factor
            standard = value * factor
            if not analyte.low <= standard <= analyte.high:
                return self._reject(
                    row,
                    "implausible_value",
                    f"{analyte.code} {written} {unit} = {standard:g} {analyte.unit} is outside "
                    f"the plausible {analyte.low:g}-{analyte.high:g}",
                    "value",
                )
            if value >= 9999 and _SENTINEL.fullmatch(written):  # possible, but a placeholder
                return self._reject(
                    row, "implausible_value", f"{written} is a placeholder, not a result", "value"
                )
            reference = values.get(c_range)  # type: ignore[arg-type]
            low = high = None
            reference = (reference.strip() or d_range) if reference is not None else d_range
            if reference is not None:
                found = ranges.get((analyte.code, unit, reference))
                if found is None:
                    low, high = parse_range(reference)
                    if len(ranges) >= _CACHE_LIMIT:
                        ranges.clear()
                    found = ranges[(analyte.code, unit, reference)] = (
                        None if low is None else low * factor,
                        None if high is None else high * factor,
                    )
                low, high = found
            fields["analyte"] = analyte.code
            fields["value"] = standard
            fields["unit"] = analyte.unit
            fields["operator"] = operator
            fields["value_as_written"] = written
            fields["unit_as_written"] = unit_written
            fields["loinc"] = analyte.loinc
            fields["item_code"] = code
            fields["item_name"] = name
            fields["reference_range"] = reference
            fields["range_low"] = low
            fields["range_high"] = high
            return None

        return finish

    def _analyte_named(self, code: str) -> Analyte:
        analyte = self.vocab.analyte(code) or self.vocab.analyte_by_alias(code)
        if analyte is None:
            raise InvalidInput(
                f"{self._where()}: {code!r} is not an analyte of the vocabulary "
                f"({', '.join(a.code for a in self.vocab.analytes)})",
                code="invalid_mapping",
            )
        return analyte

    # -- diagnosis -----------------------------------------------------------

    def _compile_diagnosis(self) -> Finisher:
        spec = self.mapping.fields.get("icd10", FieldSpec())
        read_code, vocab = self._text("icd10"), self.vocab
        codes = {fold(k): v for k, v in spec.codes.items()}
        canonical = _cached(lambda text: normalize_icd10(codes.get(fold(text), text)))

        def finish(row: SourceRow, fields: dict[str, Any]) -> Rejection | None:
            written = read_code(row.values)
            text = fields["diagnosis_text"]
            if written is not None:
                try:
                    fields["icd10"] = canonical(written)
                except InvalidInput:
                    return self._reject(
                        row, "invalid_code", f"{written!r} is not an ICD-10 code", "icd10"
                    )
                fields["icd10_from_text"], fields["confidence"] = False, 1.0
            elif text is not None:
                found = vocab.icd10_from_text(text)
                fields["icd10_from_text"] = found is not None
                if found is not None:
                    fields["icd10"], fields["confidence"] = found
            else:
                return self._reject(
                    row, "missing_required", "neither an ICD-10 code nor a text", "icd10"
                )
            return None

        return finish

    # -- medication and operation ---------------------------------------------

    def _coder(
        self,
        code_field: str,
        name_field: str,
        normalize: Callable[[str], str],
        by_name: Callable[[str], str | None],
    ) -> Finisher:
        """Code from the code column (through its code map), else from the name
        (through the name's code map, else the vocabulary); None if unknown."""
        specs = self.mapping.fields
        code_map = {fold(k): v for k, v in specs.get(code_field, FieldSpec()).codes.items()}
        name_map = {fold(k): v for k, v in specs.get(name_field, FieldSpec()).codes.items()}
        read_code = self._text(code_field)

        def from_code(text: str) -> str | None:
            try:
                return normalize(code_map.get(fold(text), text))
            except InvalidInput:
                return None

        def from_name(text: str) -> str | None:
            mapped = name_map.get(fold(text))
            if mapped is not None:
                return from_code(mapped)
            return by_name(text)

        code_of, name_of = _cached(from_code), _cached(from_name)

        def finish(row: SourceRow, fields: dict[str, Any]) -> Rejection | None:
            written = read_code(row.values)
            code = code_of(written) if written is not None else None
            if code is None and fields[name_field] is not None:
                code = name_of(fields[name_field])
            fields[code_field] = code
            return None

        return finish

    def _compile_medication(self) -> Finisher:
        def by_name(name: str) -> str | None:
            drug = self.vocab.drug_by_name(name)
            return drug.atc if drug else None

        return self._coder("drug_code", "drug_name", normalize_atc, by_name)

    def _compile_operation(self) -> Finisher:
        def by_name(name: str) -> str | None:
            procedure = self.vocab.procedure_by_name(name)
            return procedure.code if procedure else None

        return self._coder("procedure_code", "operation_name", normalize_icd9cm3, by_name)

    # -- follow-up -----------------------------------------------------------

    def _compile_follow_up(self) -> Finisher:
        def finish(row: SourceRow, fields: dict[str, Any]) -> Rejection | None:
            if fields["vital_status"] is None and fields["death_date"] is not None:
                fields["vital_status"] = "dead"  # a death date says so
            return None

        return finish


_MISSING: Any = object()


class _LabAnalyte(NamedTuple):
    """What the lab step needs of an analyte, in one tuple."""

    code: str
    unit: str  # standard unit
    loinc: str | None
    low: float  # plausible range, -inf/inf when open
    high: float
    default_unit: str | None  # the table's default_units entry


# fields a target's finishing step reads itself (not through the plan)
_HOOKED: dict[str, set[str]] = {
    "lab": {"value", "unit", "item_code", "item_name", "reference_range"},
    "diagnosis": {"icd10"},
    "medication": {"drug_code"},
    "operation": {"procedure_code"},
}
# fields a record carries beyond its target's
_EXTRAS: dict[str, tuple[str, ...]] = {
    "lab": (
        "analyte",
        "operator",
        "value_as_written",
        "unit_as_written",
        "loinc",
        "range_low",
        "range_high",
    ),
    "diagnosis": ("icd10_from_text", "confidence"),
}

__all__ = [
    "Extraction",
    "FieldSpec",
    "RowMapper",
    "SiteMapping",
    "SourceSpec",
    "TableMapping",
    "load_mapping",
    "parse_mapping",
]
