"""Logical and physical plans: what to run, and how it is split into parallel chains."""
