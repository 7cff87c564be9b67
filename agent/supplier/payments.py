"""How a supplier knows it was paid: the incoming payment, as its own wallet's history records it, read through
the mesh as the supplier itself (wallet:read on its own wallet), and the buyer's wallet as discovery lists it
(the wallet's own signature binds it to the buyer's card).

A receipt a buyer shows could be replayed or made up; the wallet's `payment_in` entry exists only once the money
was credited to the supplier's wallet, so that entry is what counts.
"""

from __future__ import annotations

from typing import Protocol

from agent.mesh import ActionFailedError, MeshClient, ToolRefusedError
from servers.common.errors import MeshError
from servers.discovery.models import AgentRecord
from servers.wallet.models import Entry, TransactionPage

PAGE = 100
MAX_PAGES = 50
"""How far back the history is searched: the newest 5,000 entries. A payment is checked minutes after it is made,
so this bounds the work a made-up payment id costs without missing a real one."""


class PaymentCheckUnavailableError(MeshError):
    """The wallet or discovery did not answer: nothing was decided, the same call may succeed later."""


class Payments(Protocol):
    """Where the supplier's payments are read from."""

    async def incoming(self, payment_id: str) -> Entry | None:
        """The `payment_in` entry of `payment_id` in the supplier's wallet, if the money arrived."""
        ...

    async def wallet_of(self, agent_id: str) -> str | None:
        """The wallet discovery lists for `agent_id` (None: it lists none)."""
        ...


class MeshPayments:
    """`Payments` through the mesh, as the supplier: `mesh` carries its principal, `wallet` is its own."""

    def __init__(self, mesh: MeshClient, wallet: str) -> None:
        self.mesh = mesh
        self.wallet = wallet

    async def incoming(self, payment_id: str) -> Entry | None:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await self._page(cursor)
            for entry in page.transactions:
                if entry.kind == "payment_in" and (entry.reference or "").lower() == payment_id:
                    return entry
            if page.next_cursor is None:
                return None
            cursor = page.next_cursor
        return None

    async def wallet_of(self, agent_id: str) -> str | None:
        try:
            record = await self.mesh.call("discovery", "get_agent", AgentRecord, agent_id=agent_id)
        except ToolRefusedError:  # not listed
            return None
        except ActionFailedError as exc:
            raise _unavailable(exc) from exc
        return record.card.mesh.wallet

    async def _page(self, cursor: str | None) -> TransactionPage:
        try:
            return await self.mesh.call(
                "wallet", "list_transactions", TransactionPage, address=self.wallet, limit=PAGE, cursor=cursor
            )
        except ActionFailedError as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: ActionFailedError) -> PaymentCheckUnavailableError:
    return PaymentCheckUnavailableError(
        f"the payment cannot be checked now ({exc}); nothing was recorded", hint="place the order again later"
    )
