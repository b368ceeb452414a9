"""The device catalogue: device types with their capabilities, and known firmware versions."""
