"""Meter readings sealed by gateways for EMTs (CMS containers gridgate cannot open): the outbox the
EMTs fetch them from, and the EMTs' on-demand readout requests (TAF 6)."""
