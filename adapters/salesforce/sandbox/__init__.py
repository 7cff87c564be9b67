"""A sandbox Salesforce org on loopback: the REST API's rules, enforced, so the adapter runs offline and
clients we did not write (simple-salesforce) accept it.

What it enforces (shared/reference/salesforce-and-sap.md §5.1):
- OAuth 2.0 at /services/oauth2/token (oauth.py): client credentials (form fields or HTTP Basic) and the
  JWT bearer flow (RS256 assertion checked against the configured public key: issuer, subject, audience,
  expiry). Answers carry `instance_url` on another host name than the token URL, and no `expires_in`.
  Refusals are `{"error", "error_description"}`.
- Every data call needs a live bearer token, else 401 INVALID_SESSION_ID. Only the configured API
  versions exist. `Sforce-Limit-Info: api-usage=N/M` on every data answer; past M, 403
  REQUEST_LIMIT_EXCEEDED (app.py).
- Describe (schema.py): `/sobjects/` lists the sObjects, `/sobjects/{type}/` gives one with its recent
  items, `/sobjects/{type}/describe` its fields (type, length, nillable, createable, picklist values, ...).
- sObjects (Lead, Opportunity, Account, Contact) with required fields, read-only fields, restricted
  picklists, dates, e-mail, lengths; 18-character IDs with the right key prefix, 15-character IDs
  accepted; 201 on create, 204 on PATCH, 404 NOT_FOUND, 400 MALFORMED_ID, 415 without JSON, 400
  JSON_PARSER_ERROR for NaN or Infinity; upsert by an external ID field (org.py, rest.py).
- SOQL (soql.py) with paging by `nextRecordsUrl`; `/limits`; `/sobjects/{type}/updated/`.
- Every error is Salesforce's array of `{"message", "errorCode", "fields"}`: unknown routes (404), verbs a
  resource does not take (405) and anything unexpected (500) included (errors.py).

Test hooks under /_emulator/ (also methods on `SalesforceOrg`): expire every token, queue faults (an
HTTP status and error code, latency, a dropped connection; before or after the change is committed),
list the requests received with their bodies, reset.
"""

from adapters.salesforce.sandbox.app import build_app, sandbox_app
from adapters.salesforce.sandbox.errors import ApiError
from adapters.salesforce.sandbox.org import Fault, SalesforceOrg

__all__ = ["ApiError", "Fault", "SalesforceOrg", "build_app", "sandbox_app"]
