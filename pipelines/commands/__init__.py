"""Subcommands of ``pare``; each module registers one command group."""
