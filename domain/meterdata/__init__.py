"""Meter data of the MDM (docs/mdm.md): series per metering point, OBIS code and market partner;
one row per series and day with the day's values, versioned (raw, validated, edited); point
readings; the delivery log; grid state data."""
