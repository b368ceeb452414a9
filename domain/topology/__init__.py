"""The fleet's topology over time: which device is assigned where, from when until when."""
