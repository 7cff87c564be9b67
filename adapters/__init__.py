"""Enterprise adapters (Salesforce, SAP) as MCP servers, each with an emulator of its platform.

`EMULATORS` names, per platform, the module whose `sandbox_app()` is the emulator `stateset emulate` runs.
"""

EMULATORS = {
    "salesforce": "adapters.salesforce.emulator",
    "sap": "adapters.sap.emulator",
}
