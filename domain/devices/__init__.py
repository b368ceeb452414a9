"""Devices: smart meter gateways (SMGW) with their lifecycle, base meters, CLS modules."""
