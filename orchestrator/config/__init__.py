"""The manifest: its types, the YAML reader, the one ``${VAR}`` substitution, key rules."""
