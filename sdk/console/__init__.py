"""What the user sees while a command runs: quiet third-party logs, progress, summary tables."""
