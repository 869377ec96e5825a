"""Small helpers every role of ``edge`` uses (file checksums, rate-limited logging); no numpy, no runtime."""
