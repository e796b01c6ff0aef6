"""The command line: argument parsing, terminal output, scaffolding and one module per command."""
