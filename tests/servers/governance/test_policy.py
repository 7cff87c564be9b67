from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from servers.governance.errors import PolicyError
from servers.governance.policy import compile_policy, policy_version
from servers.governance.policy_text import parse_document
from tests.servers.governance.conftest import POLICY

DEFAULT = Path(__file__).parents[3] / "configs" / "governance" / "default.yaml"


def test_the_shipped_default_policy_compiles_and_covers_the_standard_types() -> None:
    policy = compile_policy(parse_document(DEFAULT.read_text()))
    assert set(policy.rules) == {
        "payment",
        "purchase_order",
        "create_lead",
        "update_opportunity",
        "treasury",
        "contract_call",
        "raise_limits",
    }
    payment = {rule.id: rule for rule in policy.rules["payment"]}
    assert payment["per_transaction_limit"].when.amount_above == 100_000_000
    assert payment["daily_budget"].when.velocity.max_amount == 500_000_000  # type: ignore[union-attr]
    assert policy.rules["contract_call"] == ()


def test_the_version_is_the_content_not_the_formatting() -> None:
    document = parse_document(POLICY)
    as_json = parse_document(json.dumps(document, indent=4))
    assert compile_policy(document).version == compile_policy(as_json).version == policy_version(document)
    changed = yaml.safe_load(POLICY)
    changed["rules"]["payment"][0]["when"]["amount_above"] = "101"
    assert policy_version(changed) != policy_version(document)


def mutate(path: str, value: object) -> dict[str, object]:
    document = yaml.safe_load(POLICY)
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        (
            "rules.payment.0.effect",
            "maybe",
            "rules.payment[0].effect: 'maybe' is not one of ['allow', 'deny', 'require_approval']",
        ),
        ("rules.payment.0.when.amount_above", "1e3", "rules.payment[0].when.amount_above: '1e3' is not a USDC amount"),
        (
            "rules.payment.0.when.amount_abov",
            "5",
            "rules.payment[0].when: Additional properties are not allowed ('amount_abov' was unexpected);"
            " allowed: amount_above",
        ),
        (
            "rules.payment.1.when.velocity.window",
            "1 day",
            "rules.payment[1].when.velocity.window: '1 day' is not a duration such as '30m', '24h' or '7d'",
        ),
        ("rules.payment.2.workflow", "nobody", "rules.payment[2].workflow: 'nobody' is not defined under workflows"),
        ("workflows.finance.required", 4, "workflows.finance.required: 4 approvals cannot come from 3 approvers"),
        ("workflows.finance.approvers", ["bob"], "workflows.finance.approvers[0] 'bob' is not an Ethereum address"),
        ("rules.wire", [], "rules.wire: action type 'wire' is neither standard nor declared"),
        (
            "compliance.jurisdictions.blocked",
            ["North Korea"],
            "compliance.jurisdictions.blocked[0]: 'North Korea' is not an ISO 3166 alpha-2 code",
        ),
        ("rules.payment.3.id", "large_payment", "rules.payment[3].id: 'large_payment' is used twice for payment"),
        ("rules.treasury.0.workflow", None, "rules.treasury[0].workflow: None is not of type 'string'"),
    ],
)
def test_a_bad_policy_names_the_path_and_what_is_allowed(path: str, value: object, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        compile_policy(mutate(path, value))
    assert says in str(caught.value)


def test_an_unquoted_address_in_yaml_is_explained() -> None:
    text = POLICY.replace("'0x", "0x").replace("',", ",").replace("']", "]")
    with pytest.raises(PolicyError, match=r"workflows.finance.approvers\[0\]: .* is a number, not a string; in YAML"):
        compile_policy(parse_document(text))


def test_yaml_that_does_not_parse_names_the_line() -> None:
    with pytest.raises(PolicyError, match="not valid YAML or JSON at line 3, column 1"):
        parse_document("name: x\nrules: [unclosed\n")
    with pytest.raises(PolicyError, match="must be a mapping"):
        parse_document("- just\n- a list\n")
