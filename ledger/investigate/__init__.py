"""Investigation tools for auditors, lenders and investigators: audit reports (`audit`, with
the report document in `audit_model`, the merchant figures in `audit_figures` and the text,
JSON and HTML renderings in `audit_render`), case files and replays of disputed orders
(`replay`), decoded call traces (`trace`)."""
