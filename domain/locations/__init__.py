"""Where devices serve: connection points (Anschlussstellen), metering points (MeLo), market
locations (MaLo)."""
