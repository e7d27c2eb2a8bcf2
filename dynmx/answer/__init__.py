"""Answers: the lookup algorithm (RFC 1034 4.3.2), the compiler and the answer table."""
