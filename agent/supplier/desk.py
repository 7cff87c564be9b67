"""The supplier's rules: what it quotes, what it takes an order on, who may see and change an order.

A quote is refused with the reason when the item is not in the catalogue, the quantity is more than the delivery
period has left, or the date is sooner than the item's lead time. An order is taken only from the quote's buyer,
only while the quote is valid, once per quote (a repeat with the same payment answers with the same order; another
payment is refused), and only once the supplier's own wallet shows that payment, of at least the quote's total,
from the wallet the buyer lists in discovery. Whatever is refused records nothing.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

from agent.identity import AgentIdentity
from agent.supplier.config import SupplierConfig
from agent.supplier.payments import Payments
from agent.supplier.signed import Order, Quote, signed_order, signed_quote, terms_hash
from agent.supplier.store import SupplierStore
from servers.common.auth import Principal
from servers.common.clock import Clock, utc
from servers.common.errors import InvalidInputError, NotFoundError
from servers.common.feed import Publisher
from servers.common.gate import forbidden
from servers.common.money import MAX_AMOUNT, format_usdc

MAX_OPEN_QUOTES = 20
"""Open quotes one buyer may hold: each holds capacity, so a buyer cannot reserve a supplier's whole capacity by
asking and never ordering."""
HORIZON_DAYS = 366
"""How far ahead a supplier quotes."""
_PAYMENT_ID = re.compile(r"0x[0-9a-f]{64}")


def order_uri(order_id: str) -> str:
    return f"supplier://orders/{order_id}"


class SupplierDesk:
    """A supplier's quotes and orders, signed by its key, kept in its store, paid into `payments`' wallet."""

    def __init__(
        self,
        config: SupplierConfig,
        identity: AgentIdentity,
        store: SupplierStore,
        payments: Payments,
        wallet: str,
        feed: Publisher,
        clock: Clock,
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.payments = payments
        self.wallet = wallet
        self.feed = feed
        self.clock = clock

    async def request_quote(self, buyer: Principal, item: str, quantity: int, delivery_date: date) -> Quote:
        """A signed quote for `buyer`.

        Raises:
            InvalidInputError: an unknown item, a date sooner than the lead time or too far ahead, a quantity
                more than the period has left.
            ConflictError: the buyer holds too many open quotes.
        """
        terms = self.config.supplier
        entry = terms.entry(item)
        if entry is None:
            raise InvalidInputError(
                f"item {item!r} is not in {terms.trading_name}'s catalogue",
                hint=f"items: {', '.join(e.item for e in terms.catalogue)}",
            )
        now = int(self.clock())
        today = utc(now).date()
        earliest = today + timedelta(days=entry.lead_time_days)
        if delivery_date < earliest:
            raise InvalidInputError(
                f"delivery_date {delivery_date.isoformat()} is sooner than {item}'s lead time of "
                f"{entry.lead_time_days} days allows",
                hint=f"the earliest is {earliest.isoformat()}",
            )
        if delivery_date > today + timedelta(days=HORIZON_DAYS):
            raise InvalidInputError(
                f"delivery_date {delivery_date.isoformat()} is more than {HORIZON_DAYS} days ahead",
                hint=f"the latest is {(today + timedelta(days=HORIZON_DAYS)).isoformat()}",
            )
        if quantity > entry.capacity:  # also keeps the total far inside MAX_AMOUNT for any sane catalogue
            raise InvalidInputError(
                f"quantity {quantity} of {item} is more than {terms.trading_name} delivers in a period "
                f"({entry.capacity} units per {terms.period_days} days)",
                hint="split the order over several delivery dates",
            )
        total = quantity * entry.unit_price
        if total > MAX_AMOUNT:
            raise InvalidInputError(f"quantity {quantity} of {item} would cost more than {format_usdc(MAX_AMOUNT)}")
        period = delivery_date.toordinal() // terms.period_days
        first = date.fromordinal(period * terms.period_days)
        last = first + timedelta(days=terms.period_days - 1)
        conditions = {
            "currency": "USDC",
            "unit": entry.unit,
            "description": entry.description,
            "conditions": terms.terms,
        }
        quote = Quote(
            quote_id=f"quote_{uuid.uuid4().hex}",
            supplier=self.identity.agent_id,
            supplier_address=self.identity.address,
            pay_to=self.wallet,
            buyer=buyer.did,
            item=item,
            quantity=quantity,
            unit_price=entry.unit_price,
            total=total,
            delivery_date=delivery_date.isoformat(),
            issued_at=now,
            valid_until=now + 60 * terms.quote_validity_minutes,
            terms=conditions,
            terms_hash=terms_hash(conditions),
            signature="",
            typed_data={},
        )
        quote = signed_quote(quote, self.identity.signer, self.identity.chain_id)
        return await self.store.issue(
            quote,
            period=period,
            period_name=f"the period {first.isoformat()} to {last.isoformat()}",
            capacity=entry.capacity,
            max_open=MAX_OPEN_QUOTES,
            now=now,
        )

    async def place_order(self, buyer: Principal, quote_id: str, payment_id: str) -> Order:
        """The signed confirmation of an order on `quote_id`, paid by `payment_id`.

        Raises:
            MCPError: FORBIDDEN, the quote was made for someone else.
            NotFoundError: no such quote, or no such payment reached the supplier's wallet.
            InvalidInputError: a malformed payment id; a payment from another wallet, or of less than the total.
            ConflictError: the quote expired, was ordered with another payment, or the payment paid another order.
            PaymentCheckUnavailableError: the wallet or discovery did not answer.
        """
        payment_id = payment_id.lower()
        if not _PAYMENT_ID.fullmatch(payment_id):
            raise InvalidInputError(
                f"payment_id {payment_id[:80]!r} is not a payment id",
                hint="use the payment_id of the wallet's receipt: 0x followed by 64 hex digits",
            )
        quote = await self.store.quote(quote_id)
        if quote is None:
            raise NotFoundError(f"no quote {quote_id[:80]!r} here", hint="ask for one with request_quote")
        if quote.buyer != buyer.did:
            raise forbidden(f"quote {quote_id} was not made for {buyer.did}; only its buyer may order on it")
        now = int(self.clock())
        draft = Order(
            order_id=f"order_{uuid.uuid4().hex}",
            quote_id=quote.quote_id,
            supplier=quote.supplier,
            buyer=quote.buyer,
            item=quote.item,
            quantity=quote.quantity,
            total=quote.total,
            payment_id=payment_id,
            delivery_date=quote.delivery_date,
            status="confirmed",
            at=now,
            signature="",
            typed_data={},
        )
        if quote.valid_until >= now:  # a repeat after expiry still gets its order (from the store, below)
            await self._check_paid(quote, payment_id)
        order = await self.store.place(signed_order(draft, self.identity.signer, self.identity.chain_id), now=now)
        if not order.replayed:
            await self.feed.publish([order_uri(order.order_id)])
        return order

    async def _check_paid(self, quote: Quote, payment_id: str) -> None:
        buyer_wallet = await self.payments.wallet_of(quote.buyer)
        if buyer_wallet is None:
            raise InvalidInputError(
                f"{quote.buyer} lists no wallet in discovery, so no payment can be told to be its own",
                hint="list the paying wallet on the buyer's card, bound with its signature",
            )
        entry = await self.payments.incoming(payment_id)
        if entry is None:
            raise NotFoundError(
                f"payment {payment_id} has not reached {quote.pay_to}",
                hint=f"pay {format_usdc(quote.total)} USDC to {quote.pay_to} from {buyer_wallet}, then order again",
            )
        if (entry.counterparty or "").lower() != buyer_wallet.lower():
            raise InvalidInputError(
                f"payment {payment_id} came from {entry.counterparty}, not from {buyer_wallet}, the wallet "
                f"{quote.buyer} lists",
                hint="pay from the buyer's listed wallet",
            )
        if entry.amount < quote.total:
            raise InvalidInputError(
                f"payment {payment_id} brought {format_usdc(entry.amount)} USDC; quote {quote.quote_id} costs "
                f"{format_usdc(quote.total)} USDC",
            )

    async def order_status(self, caller: Principal, order_id: str) -> Order:
        """The order's latest signed statement, for its buyer or the supplier itself.

        Raises:
            NotFoundError: no such order.
            MCPError: FORBIDDEN, someone else's order.
        """
        order = await self.store.order(order_id)
        if order is None:
            raise NotFoundError(f"no order {order_id[:80]!r} here")
        if caller.did not in (order.buyer, self.identity.agent_id) and caller.kind != "operator":
            raise forbidden(f"order {order_id} is not {caller.did}'s; only its buyer or the supplier sees it")
        return order

    async def confirm_delivery(self, caller: Principal, order_id: str) -> Order:
        """Mark the order delivered, signed; an order already delivered is answered as it is.

        Raises:
            NotFoundError: no such order.
            MCPError: FORBIDDEN, the caller is neither the supplier nor its operator.
        """
        if caller.did != self.identity.agent_id and caller.kind != "operator":
            raise forbidden(f"only the supplier {self.identity.agent_id} confirms its deliveries, not {caller.did}")
        order = await self.store.order(order_id)
        if order is None:
            raise NotFoundError(f"no order {order_id[:80]!r} here")
        if order.status == "delivered":
            return order.model_copy(update={"replayed": True})
        delivered = order.model_copy(update={"status": "delivered", "at": int(self.clock())})
        delivered = await self.store.deliver(signed_order(delivered, self.identity.signer, self.identity.chain_id))
        if not delivered.replayed:
            await self.feed.publish([order_uri(order_id)])
        return delivered
