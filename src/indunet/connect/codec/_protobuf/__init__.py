"""Generated protobuf code, kept apart from hand-written code."""
