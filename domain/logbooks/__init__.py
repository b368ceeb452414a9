"""Gateway logbooks read out by the GWA (system, calibration-law and consumer log), stored
structured so operators can filter by severity, time and text."""
