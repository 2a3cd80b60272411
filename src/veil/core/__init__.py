"""Data types shared by every stage. No I/O here."""
