"""gridgate's simulated SMGW fleet (``gridgate simulate``): many gateways in one asyncio process that
speak docs/protocol.md from their own state. See docs/simulator.md."""
