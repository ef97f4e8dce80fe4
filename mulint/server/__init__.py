"""The warm server: a local process that keeps torch and mulint imported, so that `mulint check` answers
in about a second instead of paying Python's start-up and `import torch` each time.

`mulint.server.client` (the standard library only) talks to it; `mulint.server.daemon` is the server;
`mulint.server.protocol` holds what both agree on: where the socket lives, the server's key, the framing.
"""
