"""The `ledger` command: `main` holds the command table; each command module imports only
`_common`, never another command module."""
