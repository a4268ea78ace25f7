"""The writer process (run as ``python -m kohakuboard.writer``)."""
