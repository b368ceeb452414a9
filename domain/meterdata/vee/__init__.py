"""Validation, estimation and editing of meter data (VEE, docs/mdm.md "VEE"): declarative rule
chains per market role, pure rule functions over a day's values, and the service that applies them
and writes validated and edited versions."""
