"""Market partners (Marktpartner): the EMTs gateways deliver to, grid operators, suppliers."""
