"""Sổ tay reporting: usage dashboards, monthly reports and the central usage stream."""
