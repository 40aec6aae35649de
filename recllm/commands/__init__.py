"""One module per `recllm` subcommand (see recllm/cli.py)."""
