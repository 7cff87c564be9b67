"""What a supplier remembers, in its own SQLite file beside the agent's other state (`supplier-<name>.db` in the
data directory): the quotes it issued, the orders it took, and so the capacity they hold.

Each quote and each order is kept as the signed document it was answered with, so a repeat of a call (or a
restart) answers with the same signature. Capacity is not a counter that could drift: what an item's period has
committed is the quantity of its orders plus its quotes still open (a signed quote is a promise, so it holds its
capacity until it expires or is ordered on), summed in the same transaction that issues the next quote. Every
check that guards a write runs inside that write's transaction, so two calls at once cannot both pass it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from agent.supplier.signed import Order, Quote
from servers.common.db import Database, Migration, Queries, Store
from servers.common.errors import ConflictError, InvalidInputError

MIGRATIONS = (
    Migration(
        1,
        "quotes and orders",
        """
        CREATE TABLE quotes (
            quote_id TEXT PRIMARY KEY,
            buyer TEXT NOT NULL,
            item TEXT NOT NULL,
            period INTEGER NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            total INTEGER NOT NULL CHECK (total > 0),
            valid_until INTEGER NOT NULL,
            ordered INTEGER NOT NULL DEFAULT 0,
            document TEXT NOT NULL
        );
        CREATE INDEX quotes_by_period ON quotes (item, period);
        CREATE INDEX quotes_open_by_buyer ON quotes (buyer, valid_until) WHERE ordered = 0;
        CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            quote_id TEXT NOT NULL UNIQUE REFERENCES quotes (quote_id),
            payment_id TEXT NOT NULL UNIQUE,
            buyer TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('confirmed', 'delivered')),
            document TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        );
        """,
    ),
)


def database_file(data_dir: Path, name: str) -> Path:
    """Where the supplier named `name` keeps its quotes and orders."""
    return data_dir / f"supplier-{name}.db"


class SupplierQueries(Queries):
    def committed(self, item: str, period: int, now: int) -> int:
        """Units of `item` promised for delivery in `period`: ordered, or quoted and still open."""
        row = self._s.one(
            "SELECT coalesce(sum(quantity), 0) AS units FROM quotes"
            " WHERE item = ? AND period = ? AND (ordered = 1 OR valid_until >= ?)",
            (item, period, now),
        )
        return 0 if row is None else int(row["units"])

    def open_quotes(self, buyer: str, now: int) -> int:
        row = self._s.one(
            "SELECT count(*) AS n FROM quotes WHERE buyer = ? AND ordered = 0 AND valid_until >= ?", (buyer, now)
        )
        return 0 if row is None else int(row["n"])

    def quote(self, quote_id: str) -> Quote | None:
        row = self._s.one("SELECT document FROM quotes WHERE quote_id = ?", (quote_id,))
        return None if row is None else Quote.model_validate_json(row["document"])

    def order(self, order_id: str) -> Order | None:
        row = self._s.one("SELECT document FROM orders WHERE order_id = ?", (order_id,))
        return None if row is None else Order.model_validate_json(row["document"])

    def order_by(self, column: str, value: str) -> Order | None:
        assert column in ("quote_id", "payment_id")  # a column name, never a caller's value
        row = self._s.one(f"SELECT document FROM orders WHERE {column} = ?", (value,))
        return None if row is None else Order.model_validate_json(row["document"])

    def add_quote(self, quote: Quote, period: int) -> None:
        self._s.run(
            "INSERT INTO quotes (quote_id, buyer, item, period, quantity, total, valid_until, document)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                quote.quote_id,
                quote.buyer,
                quote.item,
                period,
                quote.quantity,
                quote.total,
                quote.valid_until,
                quote.model_dump_json(),
            ),
        )

    def add_order(self, order: Order) -> None:
        self._s.run("UPDATE quotes SET ordered = 1 WHERE quote_id = ?", (order.quote_id,))
        self._s.run(
            "INSERT INTO orders (order_id, quote_id, payment_id, buyer, status, document, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                order.order_id,
                order.quote_id,
                order.payment_id,
                order.buyer,
                order.status,
                order.model_dump_json(),
                order.at,
            ),
        )

    def update_order(self, order: Order) -> None:
        self._s.run(
            "UPDATE orders SET status = ?, document = ?, updated_at = ? WHERE order_id = ?",
            (order.status, order.model_dump_json(), order.at, order.order_id),
        )


class SupplierStore(Store[SupplierQueries]):
    queries = SupplierQueries

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[SupplierStore]:
        async with Database.open(path, MIGRATIONS) as db:
            yield cls(db)

    async def issue(
        self, quote: Quote, *, period: int, period_name: str, capacity: int, max_open: int, now: int
    ) -> Quote:
        """Record `quote` if its item's `period` (`period_name` in messages) has the capacity left and its buyer
        fewer than `max_open` open quotes; returns it.

        Raises:
            InvalidInputError: the quantity is more than the period has left.
            ConflictError: the buyer already holds `max_open` open quotes.
        """

        def write(q: SupplierQueries) -> Quote:
            left = capacity - q.committed(quote.item, period, now)
            if quote.quantity > left:
                raise InvalidInputError(
                    f"quantity {quote.quantity} of {quote.item} is more than the {max(left, 0)} units still free for "
                    f"delivery in {period_name}",
                    hint="ask for fewer, or for a later delivery date",
                )
            if q.open_quotes(quote.buyer, now) >= max_open:
                raise ConflictError(
                    f"{quote.buyer} already holds {max_open} open quotes",
                    hint="order on one, or wait until one expires",
                )
            q.add_quote(quote, period)
            return quote

        return await self.write(write)

    async def quote(self, quote_id: str) -> Quote | None:
        return await self.read(lambda q: q.quote(quote_id))

    async def order(self, order_id: str) -> Order | None:
        return await self.read(lambda q: q.order(order_id))

    async def place(self, order: Order, *, now: int) -> Order:
        """Record `order` on its quote, once: the quote's existing order if it was placed with the same payment
        (marked `replayed`).

        Raises:
            ConflictError: the quote was ordered with another payment, the payment already paid another order,
                or the quote expired.
        """

        def write(q: SupplierQueries) -> Order:
            existing = q.order_by("quote_id", order.quote_id)
            if existing is not None:
                if existing.payment_id == order.payment_id:
                    return existing.model_copy(update={"replayed": True})
                raise ConflictError(
                    f"quote {order.quote_id} was already ordered, as {existing.order_id}, with payment "
                    f"{existing.payment_id}",
                    hint="a quote is ordered once; ask for a new quote",
                )
            spent = q.order_by("payment_id", order.payment_id)
            if spent is not None:
                raise ConflictError(
                    f"payment {order.payment_id} already paid for order {spent.order_id}",
                    hint="pay for this quote separately",
                )
            quote = q.quote(order.quote_id)
            assert quote is not None  # the desk read it before
            if quote.valid_until < now:
                raise ConflictError(f"quote {quote.quote_id} expired at {quote.valid_until}; it is now {now}")
            q.add_order(order)
            return order

        return await self.write(write)

    async def deliver(self, delivered: Order) -> Order:
        """Record that the order was delivered; an order already delivered stays as it was (marked `replayed`)."""

        def write(q: SupplierQueries) -> Order:
            current = q.order(delivered.order_id)
            assert current is not None
            if current.status == "delivered":
                return current.model_copy(update={"replayed": True})
            q.update_order(delivered)
            return delivered

        return await self.write(write)
