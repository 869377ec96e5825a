"""The dashboard ``slr-web`` serves: live recognition, camera view, clip upload (the ``web`` extra)."""
