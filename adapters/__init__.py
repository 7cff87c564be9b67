"""Enterprise adapters (Salesforce, SAP) as MCP servers, each with an emulator of its platform in its
`sandbox` subpackage, apart from the production client.

`EMULATORS` names, per platform, the module whose `sandbox_app()` is the emulator `stateset emulate` runs.
Importing it is the caller's choice: nothing else here imports a sandbox.
"""

EMULATORS = {
    "salesforce": "adapters.salesforce.sandbox",
    "sap": "adapters.sap.sandbox",
}
