"""Investigation tools for auditors, lenders and investigators: audit reports (`audit`), case
files of disputed orders (`case`) and their replays (`replay`), decoded call traces (`trace`)."""
