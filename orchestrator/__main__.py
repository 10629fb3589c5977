from orchestrator.cli import cli

cli()
