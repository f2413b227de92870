"""The evidence log: a record is validated (`model`, `checks`, `validate`, `records`), becomes a
leaf (`leaf`, with salts from `master_secret`), is stored in the tree (`store`), whose head is
anchored on chain (`anchor`); a bundle (the document: `bundle_format`) discloses records with
proofs and is verified (`bundle`) against the chain (`bundle_head`) and the auditor's trust
root (`trust`)."""
