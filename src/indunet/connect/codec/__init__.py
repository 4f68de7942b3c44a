"""Pure protocol decoders: bytes in, points and reasons out. No network imports here."""
