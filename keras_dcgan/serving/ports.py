"""Why a server cannot listen where it was asked: one message for the local server's gRPC and
REST ports and for `dcgan explore`. TF-free (the explorer proxy starts without TensorFlow)."""

from __future__ import annotations

import errno


def os_error(number: int, message: str) -> OSError:
    """An OSError whose text is `message` alone (no "[Errno N]" before it)."""
    error = OSError(message)
    error.errno = number
    return error


def cannot_serve(what: str, host: str, port: int, error: OSError, flag: str) -> OSError:
    """The OSError for a failed bind of `what` (e.g. "REST") on host:port: a port in use says so
    and names the `flag` that chooses another; anything else gives the system's reason."""
    if error.errno == errno.EADDRINUSE:
        return os_error(
            error.errno,
            f"Cannot serve {what} on {host}:{port}: address already in use (another server "
            f"listens there); stop it or choose another {flag}.",
        )
    return os_error(error.errno, f"Cannot serve {what} on {host}:{port}: {error.strerror}.")
