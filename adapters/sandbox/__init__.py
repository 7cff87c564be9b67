"""What the Salesforce and SAP emulators share (adapters/<platform>/sandbox/): their test hooks and request
log, a connection that breaks on purpose, and a transport that puts an emulator inside a client's process.

Nothing in production imports this package: an adapter's app.py imports its platform's sandbox only on the
"no credentials configured" path.
"""
