"""What every Sổ tay service runs on besides the event contract."""
