"""A gateway at its site as master data sees it: whether it is ready for commissioning
(Inbetriebnahme), what deinstallation (Ausbau) ends, which meters to pair on its LMN and whether a
meter exchange (Zählerwechsel) fits the assignments. The rules of the lifecycle and LMN process
steps; the queries stay with the areas they read (``topology``, ``tariffs``, ``certificates``)."""
