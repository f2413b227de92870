"""The fulfilment escrow from Python: its types (`types`), the EIP-712 messages parties sign
(`eip712`), the calls (`calls`), immediate sends (`client`), and the platform facade that backs
every step with an evidence record and sends it through the outbox (`platform`)."""
