"""The case loop: intake by every channel, workflow, catalogue, measures, photos, notifications."""
