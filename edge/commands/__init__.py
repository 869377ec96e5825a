"""Console commands of the device package: ``slr-edge``, ``slr-listen`` and ``slr-predict``."""
