"""The image pipeline: ELF closure, runtime files, probe, layers, image assembly, summaries and history."""
