"""Tariff use cases (TAF, Tarifanwendungsfälle): the EMTs' TAF orders per metering point and the
history of profiles applied to each gateway (meter, communication and evaluation profiles)."""
