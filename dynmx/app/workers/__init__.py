"""`--workers N`: answer processes on one port, fed by this (control) process.

`pool` is the control process's side (start, restart, keep in step), `worker` the answer
process's, `channel` the messages between them, `handover` the zones a worker starts from.
The package sits inside app/ because a worker is itself a small composition of app's parts
(listeners, the zone scan, the publisher's compile steps) and app's root starts the pool.
"""
