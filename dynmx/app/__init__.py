"""The serving process. `root.App` is the composition root of `serve`; this package file
imports nothing, so a CLI command that needs one app module (a zone scan, the TSIG keyring)
does not load the whole server."""
