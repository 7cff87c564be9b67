"""What a supplier signs: its quotes and the statements of an order's state, as EIP-712 typed data under the mesh
domain (servers.common.identity), signed with the supplier's agent key.

A buyer verifies either with `recover_signer(TypedData.from_json(x.typed_data), x.signature)` and compares the
address with the supplier's card. A quote binds its conditions (currency, unit, what the item is, the supplier's
written terms) through `termsHash`, the keccak256 of their canonical JSON (`terms_hash`), so the buyer can check
the terms it was shown are the ones signed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from servers.common.identity import Signer, TypedData, content_hash, mesh_domain
from servers.common.money import Usdc

QUOTE_FIELDS = (
    ("quoteId", "string"),
    ("supplier", "string"),
    ("supplierAddress", "address"),
    ("payTo", "address"),
    ("buyer", "string"),
    ("item", "string"),
    ("quantity", "uint256"),
    ("unitPrice", "uint256"),
    ("total", "uint256"),
    ("deliveryDate", "string"),
    ("issuedAt", "uint64"),
    ("validUntil", "uint64"),
    ("termsHash", "bytes32"),
)
ORDER_FIELDS = (
    ("orderId", "string"),
    ("quoteId", "string"),
    ("supplier", "string"),
    ("buyer", "string"),
    ("item", "string"),
    ("quantity", "uint256"),
    ("total", "uint256"),
    ("paymentId", "bytes32"),
    ("deliveryDate", "string"),
    ("status", "string"),
    ("at", "uint64"),
)

OrderStatus = Literal["confirmed", "delivered"]


class Quote(BaseModel):
    """A price the supplier commits to for `valid_until`: pay `total` to `pay_to`, then place the order."""

    quote_id: str
    supplier: str = Field(description="The supplier's agent DID")
    supplier_address: str = Field(description="The supplier's signing address, as its card lists it")
    pay_to: str = Field(description="The supplier's wallet: where the payment for this quote goes")
    buyer: str = Field(description="The DID the quote was made for; only it may order on it")
    item: str
    quantity: int
    unit_price: Usdc
    total: Usdc = Field(description="quantity × unit_price, exactly")
    delivery_date: str = Field(description="The date, YYYY-MM-DD (UTC), the goods are delivered by")
    issued_at: int = Field(description="Unix seconds")
    valid_until: int = Field(description="Unix seconds; an order after this is refused")
    terms: dict[str, str] = Field(description="The conditions the quote carries; termsHash is their hash")
    terms_hash: str
    signature: str = Field(description="The supplier's EIP-712 signature over typed_data")
    typed_data: dict[str, Any] = Field(description="The signed EIP-712 SupplierQuote, as eth_signTypedData_v4 JSON")


class Order(BaseModel):
    """An order's latest state, signed by the supplier: confirmed once paid, then delivered."""

    order_id: str
    quote_id: str
    supplier: str
    buyer: str
    item: str
    quantity: int
    total: Usdc
    payment_id: str
    delivery_date: str
    status: OrderStatus
    at: int = Field(description="Unix seconds: when it reached this status")
    signature: str = Field(description="The supplier's EIP-712 signature over typed_data")
    typed_data: dict[str, Any] = Field(description="The signed EIP-712 SupplierOrder, as eth_signTypedData_v4 JSON")
    replayed: bool = Field(default=False, description="True when this answers a repeat of an earlier call")


def terms_hash(terms: dict[str, str]) -> str:
    return content_hash(terms)


def quote_typed_data(chain_id: int, message: dict[str, Any]) -> TypedData:
    return TypedData("SupplierQuote", QUOTE_FIELDS, mesh_domain(chain_id), message)


def order_typed_data(chain_id: int, message: dict[str, Any]) -> TypedData:
    return TypedData("SupplierOrder", ORDER_FIELDS, mesh_domain(chain_id), message)


def quote_message(quote: Quote) -> dict[str, Any]:
    """The quote's EIP-712 message, from its fields (what the signature covers)."""
    return {
        "quoteId": quote.quote_id,
        "supplier": quote.supplier,
        "supplierAddress": quote.supplier_address,
        "payTo": quote.pay_to,
        "buyer": quote.buyer,
        "item": quote.item,
        "quantity": quote.quantity,
        "unitPrice": quote.unit_price,
        "total": quote.total,
        "deliveryDate": quote.delivery_date,
        "issuedAt": quote.issued_at,
        "validUntil": quote.valid_until,
        "termsHash": quote.terms_hash,
    }


def order_message(order: Order) -> dict[str, Any]:
    """The order statement's EIP-712 message, from its fields."""
    return {
        "orderId": order.order_id,
        "quoteId": order.quote_id,
        "supplier": order.supplier,
        "buyer": order.buyer,
        "item": order.item,
        "quantity": order.quantity,
        "total": order.total,
        "paymentId": order.payment_id,
        "deliveryDate": order.delivery_date,
        "status": order.status,
        "at": order.at,
    }


def signed_quote(quote: Quote, signer: Signer, chain_id: int) -> Quote:
    """`quote` with its typed data and `signer`'s signature over it."""
    typed = quote_typed_data(chain_id, quote_message(quote))
    return quote.model_copy(update={"signature": signer.sign(typed), "typed_data": typed.as_json()})


def signed_order(order: Order, signer: Signer, chain_id: int) -> Order:
    """`order` with its typed data and `signer`'s signature over it."""
    typed = order_typed_data(chain_id, order_message(order))
    return order.model_copy(update={"signature": signer.sign(typed), "typed_data": typed.as_json()})
