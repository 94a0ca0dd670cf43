"""Payloads built from a description of their fields, each with the answer the contract gives.

A payload is an object whose fields are checked in order; the first field that is missing
or wrong is the one the error names (`잘못된 요청입니다: offer.sdp`). So a broken payload
is drawn as: the fields before the broken one valid, the broken one missing or wrong, the
fields after it anything at all. A valid-shaped payload has every field valid, plus junk
keys the server must ignore. Knowing which field was broken gives the exact expected error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.support.fuzz import junk

_MISSING = object()
_NOTHING: st.SearchStrategy[Any] = st.nothing()


@dataclass(frozen=True)
class Spec:
    """One field: what it accepts, what it refuses, and whether it may be left out."""

    name: str
    valid: st.SearchStrategy[Any]
    invalid: st.SearchStrategy[Any] = _NOTHING
    required: bool = True
    fields: tuple[Spec, ...] = ()  # an object field's own fields


@dataclass(frozen=True)
class Case:
    payload: Any
    broken: str | None  # the field the error must name ('payload' for a non-object)

    @property
    def valid(self) -> bool:
        return self.broken is None


def _valid_value(spec: Spec) -> st.SearchStrategy[Any]:
    if spec.fields:  # an object (or, for a nullable one, `spec.valid`: None)
        return st.one_of(spec.valid, objects(spec.fields, valid=True).map(lambda c: c.payload))
    return spec.valid


def _invalid_value(spec: Spec) -> st.SearchStrategy[tuple[Any, str]]:
    """A wrong value for `spec` and the field path the error names."""
    own = spec.invalid.map(lambda v: (v, spec.name))
    if not spec.fields:
        return own
    nested = objects(spec.fields, valid=False, non_objects=False).map(
        lambda c: (c.payload, f"{spec.name}.{c.broken}")
    )
    return st.one_of(own, nested)


def _any_value(spec: Spec) -> st.SearchStrategy[Any]:
    options = [_valid_value(spec), _invalid_value(spec).map(lambda pair: pair[0])]
    options.append(st.just(_MISSING))
    return st.one_of(*options)


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not _MISSING}


def _valid_fields(specs: tuple[Spec, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {s.name: _valid_value(s) for s in specs if s.required},
        optional={s.name: _valid_value(s) for s in specs if not s.required},
    )


def objects(
    specs: tuple[Spec, ...], *, valid: bool | None = None, non_objects: bool = True
) -> st.SearchStrategy[Case]:
    """Objects with the fields `specs`: valid ones, broken ones, or either (None); with
    `non_objects`, the broken ones include values that are no object at all."""
    known = frozenset(s.name for s in specs)
    extra = junk.junk_extra(known)

    def with_extra(case_fields: st.SearchStrategy[tuple[dict[str, Any], str | None]]) -> Any:
        return st.builds(lambda pair, more: Case({**more, **pair[0]}, pair[1]), case_fields, extra)

    good = with_extra(_valid_fields(specs).map(lambda d: (d, None)))
    broken: list[st.SearchStrategy[Case]] = []
    if non_objects:
        broken.append(st.builds(Case, junk.not_objects(), st.just("payload")))
    for i, spec in enumerate(specs):
        before = _valid_fields(specs[:i])
        after = st.fixed_dictionaries({s.name: _any_value(s) for s in specs[i + 1 :]})
        wrong = _invalid_value(spec)
        if spec.required:
            wrong = st.one_of(wrong, st.just((_MISSING, spec.name)))
        broken.append(
            with_extra(
                st.builds(
                    lambda b, w, a, name=spec.name: (
                        _present({**b, name: w[0], **a}),
                        w[1],
                    ),
                    before,
                    wrong,
                    after,
                )
            )
        )
    if valid is True:
        return good
    if valid is False:
        return st.one_of(*broken)
    return st.one_of(good, *broken)


# ---- field values -----------------------------------------------------------------------

_CLEAN_NASTY = [t for t in junk.NASTY_TEXT if not any(0xD800 <= ord(c) <= 0xDFFF for c in t)]


def strings(min_size: int = 0, max_size: int = 255) -> st.SearchStrategy[str]:
    """Strings a strict `str` field with these bounds accepts (no lone surrogates: pydantic
    refuses them, as it must, since no database can store them)."""
    return st.one_of(
        st.text(min_size=min_size, max_size=min(max_size, 40)),
        st.sampled_from([t for t in _CLEAN_NASTY if min_size <= len(t) <= max_size]),
        # every length up to the limit, the limit itself included
        st.integers(max(min_size, 1), max_size).map(lambda n: "v" * n),
        st.just("w" * max_size),
    )


def not_strings(
    min_size: int = 0,
    max_size: int | None = 255,
    *,
    nullable: bool = False,
    binary: bool = True,
    surrogates: bool = True,
) -> st.SearchStrategy[Any]:
    """What a strict `str` field with these bounds refuses (`nullable`: None is accepted;
    `surrogates`: strings with lone surrogates, which pydantic refuses)."""
    options: list[st.SearchStrategy[Any]] = [
        junk.json_values(binary=binary).filter(
            lambda v: not isinstance(v, str) and not (nullable and v is None)
        ),
    ]
    if surrogates:
        lone = st.sampled_from(["\ud800", "\udfff", "\udc80"])
        options.append(
            st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), lone, st.text(max_size=5))
        )
    if max_size is not None:
        options.append(st.integers(max_size + 1, max_size + 3000).map(lambda n: "y" * n))
    if min_size > 0:
        options.append(st.just(""))
    return st.one_of(*options)


def not_booleans(*, binary: bool = True) -> st.SearchStrategy[Any]:
    return junk.json_values(binary=binary).filter(lambda v: not isinstance(v, bool))


def not_ints(
    low: int | None = None,
    high: int | None = None,
    *,
    nullable: bool = False,
    binary: bool = True,
) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = [
        junk.json_values(binary=binary).filter(
            lambda v: (
                (not isinstance(v, int) or isinstance(v, bool)) and not (nullable and v is None)
            )
        )
    ]
    if low is not None:
        options.append(st.integers(max_value=low - 1))
    if high is not None:
        options.append(st.integers(min_value=high + 1))
    return st.one_of(*options)
