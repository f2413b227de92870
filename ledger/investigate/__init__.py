"""Investigation tools for auditors, lenders and investigators: audit reports (`audit`, with
the report document in `audit_model`, the merchant figures in `audit_figures` and the text,
JSON and HTML renderings in `audit_render`), case files of disputed orders (`case`), what-if
changes to them (`overrides`) and their replays (`replay`), decoded call traces (`trace`)."""
