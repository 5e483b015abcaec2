"""Addresses typed into the app: one rule for the first-run walk-through and Settings."""

from __future__ import annotations

import pytest

from mipo_local.addresses import parse_addresses
from mipo_local.errors import MipoError


def test_commas_and_semicolons_separate_normalized_addresses_once_each():
    typed = " Ada@Example.org; <ada.l@fjordlab.example>, , ada@example.org, bo at lists.example"
    assert parse_addresses(typed) == ["ada@example.org", "ada.l@fjordlab.example", "bo@lists.example"]


def test_an_empty_field_is_no_addresses():
    assert parse_addresses("  , ;") == []


def test_an_entry_without_an_at_is_named_in_the_error():
    with pytest.raises(MipoError, match="'ada' is not an email address"):
        parse_addresses("ada, bo@lists.example")
