"""Splitting names for Salesforce: the seed's cases done right, and no word ever lost."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.salesforce.names import PersonName, split_name
from servers.common.errors import InvalidInputError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Cher", PersonName(None, "Cher")),
        ("Ada Lovelace", PersonName("Ada", "Lovelace")),
        ("Ludwig van Beethoven", PersonName("Ludwig", "van Beethoven")),
        ("Jean de la Fontaine", PersonName("Jean", "de la Fontaine")),
        ("García Márquez, Gabriel", PersonName("Gabriel", "García Márquez")),
        ("Doe, Dr. Jane", PersonName("Jane", "Doe", "Dr.")),
        ("Dr. Jane Doe", PersonName("Jane", "Doe", "Dr.")),
        ("Prof. Plum", PersonName(None, "Plum", "Prof.")),
        ("Dr.", PersonName(None, "Dr.")),  # a one-word name is a last name, whatever it looks like
        ("  Mary \t Ann  Smith ", PersonName("Mary", "Ann Smith")),
    ],
)
def test_names_split_as_a_person_would(name: str, expected: PersonName) -> None:
    assert split_name(name) == expected


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "is empty"), ("  ", "is empty"), ("A " + "b" * 81, "longer than Salesforce's 80"), ("a" * 41 + " B", "40")],
)
def test_names_salesforce_cannot_take_are_refused(name: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        split_name(name)


words = st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=12)


@given(st.lists(words, min_size=1, max_size=5))
def test_every_word_lands_in_the_first_or_last_name_in_order(parts: list[str]) -> None:
    name = split_name(" ".join(parts))
    rebuilt = " ".join(part for part in (name.salutation, name.first, name.last) if part)
    assert rebuilt.split() == parts
    assert name.last  # Salesforce's one required part is always there
