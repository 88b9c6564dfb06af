"""The audit log: security-relevant actions per organisation."""
