"""A sandbox SAP S/4HANA on loopback: the released purchase order API (API_PURCHASEORDER_PROCESS_SRV,
OData V2) and the released, read-only material stock API (API_MATERIAL_STOCK_SRV), with the session and
CSRF rules a real Gateway enforces, and an Event Mesh queue (shared/reference/salesforce-and-sap.md §5.2).

One module per concept:
- sessions.py: logon (Basic, OAuth bearer), the ABAP client, sessions and cookie-bound CSRF tokens;
- metadata.py: the entity types, their $metadata (valid EDMX that SAP's pyodata loads), request bodies
  checked against them;
- query.py: the OData query options ($filter, $select, $expand, $orderby, $skip, $top, $inlinecount);
- purchase_orders.py: API_PURCHASEORDER_PROCESS_SRV, and the business events its changes publish;
- material_stock.py: API_MATERIAL_STOCK_SRV, read-only, seeded by `set_stock`;
- faults.py: failures tests queue; errors.py: Gateway's V2 error envelope, on every error;
- app.py: `SapSystem` (all of the state) and the HTTP surface.

V2 JSON throughout: `d`, `results`, `__metadata`, `__deferred`, `__count`, /Date()/, decimals as strings,
ABAP initial values. Test hooks under /_emulator/ (also methods on `SapSystem`): expire sessions, queue
faults, list requests, seed stock (POST /_emulator/stock, `SapSystem.set_stock`).
"""

from adapters.sap.sandbox.app import SapSystem, build_app, sandbox_app
from adapters.sap.sandbox.faults import Fault

__all__ = ["Fault", "SapSystem", "build_app", "sandbox_app"]
