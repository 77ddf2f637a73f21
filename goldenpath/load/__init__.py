"""The golden path at load: a runner that checks every event of every user as it arrives.

Modules, one concern each: ``config`` (flags, caps and the LOAD_ALLOWED policy, checked before
any connection), ``runner`` (the users, their sockets and runs), ``memory`` (the target's RSS
and its slope per run), ``target_state`` (the target's open-connection count), ``metrics``
(latency trend, detection power), ``live`` (the progress view), ``report`` (the gates and the
load section, whose JSON shape its docstring gives), ``session`` (one run start to end) and
``__main__`` (``python -m goldenpath.load``). The per-frame checks are
``goldenpath.protocol.ledger``'s.
"""
