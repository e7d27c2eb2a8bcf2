"""Answers: the lookup algorithm (RFC 1034 4.3.2), the compiler and the answer table."""

import warnings

# dnspython's dns.dnssec loads its DSA support, which cryptography deprecates; dynmx never
# signs nor validates with DSA, so the warning would only be noise on every start.
warnings.filterwarnings("ignore", message="DSA is deprecated")
