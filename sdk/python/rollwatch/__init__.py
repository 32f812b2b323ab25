"""Rollwatch client: crash, update and install reports with a durable on-disk queue.

    import rollwatch
    client = rollwatch.Client("https://rollwatch.example.com", "rpk_…", "editor", "1.4.2", "stable")
    client.install_excepthook()
    client.session_started()
    client.update_failed("signature_mismatch", details={"from": "1.4.1"})
    client.close(timeout=2)
"""

from ._platform import ARCHES, PLATFORMS, normalise_arch, normalise_platform
from ._scrub import Scrubber
from .client import Client, default_queue_dir

__version__ = "0.1.0"
__all__ = [
    "ARCHES",
    "PLATFORMS",
    "Client",
    "Scrubber",
    "default_queue_dir",
    "normalise_arch",
    "normalise_platform",
]
