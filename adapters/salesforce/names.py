"""Splitting a person's name into Salesforce's Salutation, FirstName and LastName.

The seed split on the first space and lost everything after the second word. Here:
- "Cher"                    -> last name "Cher" (LastName is the one required part)
- "Ada Lovelace"            -> "Ada" / "Lovelace"
- "Ludwig van Beethoven"    -> "Ludwig" / "van Beethoven": everything after the first word is the last name
- "García Márquez, Gabriel" -> "Gabriel" / "García Márquez": "Last, First" says where the split is
- "Dr. Jane Doe"            -> salutation "Dr." / "Jane" / "Doe"
Whitespace is collapsed; a first name beyond Salesforce's 40 characters or a last name beyond 80 is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from servers.common.errors import InvalidInputError

SALUTATIONS = {"mr.": "Mr.", "ms.": "Ms.", "mrs.": "Mrs.", "dr.": "Dr.", "prof.": "Prof.", "mx.": "Mx."}
FIRST_NAME_MAX, LAST_NAME_MAX = 40, 80


@dataclass(frozen=True)
class PersonName:
    first: str | None
    last: str
    salutation: str | None = None

    def fields(self) -> dict[str, str]:
        fields = {"LastName": self.last}
        if self.first:
            fields["FirstName"] = self.first
        if self.salutation:
            fields["Salutation"] = self.salutation
        return fields


def split_name(name: str) -> PersonName:
    """The parts of a name; see the module for the rules.

    Raises:
        InvalidInputError: an empty name, or a part longer than Salesforce takes.
    """
    text = " ".join(name.split())
    if not text or text == ",":
        raise InvalidInputError(f"name {name!r} is empty", hint="give at least a last name")
    if "," in text:
        last, _, given = (part.strip() for part in text.partition(","))
        words = given.split()
    else:
        words = text.split()
        last = ""
    salutation = None
    first: str | None
    if len(words) > 1 or (last and words):
        salutation = SALUTATIONS.get(words[0].lower())
        if salutation is not None:
            words = words[1:]
    if last:
        first = " ".join(words) or None
    elif len(words) == 1:
        first, last = None, words[0]
    else:
        first, last = words[0], " ".join(words[1:])
    if first is not None and len(first) > FIRST_NAME_MAX:
        raise InvalidInputError(f"first name {first!r} is longer than Salesforce's {FIRST_NAME_MAX} characters")
    if len(last) > LAST_NAME_MAX:
        raise InvalidInputError(f"last name {last!r} is longer than Salesforce's {LAST_NAME_MAX} characters")
    return PersonName(first, last, salutation)
