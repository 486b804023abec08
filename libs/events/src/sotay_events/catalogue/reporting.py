"""Facts published by reporting: the aggregate usage stream for the central office.

No personal data: figures per org unit and period only.
"""
