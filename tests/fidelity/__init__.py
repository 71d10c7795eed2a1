"""Fidelity to LivePerson's published frames (issue 14): the corpus in
``tests/fixtures/frames/published/``, the emulator's shapes against it, the SDK reading it, the
platform's strictness and shift status."""
