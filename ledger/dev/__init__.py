"""Development aids, never needed in production: the flash-sale generator (`flash_sale`, its
made-up names and products in `flash_sale_vocabulary`), an escrow with named parties on a dev
chain (`sandbox`), and `ledger demo` (`demo`, `demo_escrow`)."""
