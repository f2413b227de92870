"""Investigation tools for auditors, lenders and investigators: audit reports (`audit`), case
files and replays of disputed orders (`replay`), decoded call traces (`trace`)."""
