"""Sans-IO DNS wire code for the hot path: parse a question, assemble a response.

Imports nothing from the rest of dynmx except `errors`, and no dnspython.
"""
