"""Removes personal data from text before it leaves the machine."""

import ipaddress
import os
import re

# Starts only where a run of local-part characters starts: linear on long runs without "@".
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Unix homes; the name stops at a separator, quote or space.
_UNIX_HOME = re.compile(r"(/(?:home|Users)/)([^/\\\s\"'<>:;|]+)")
# Windows homes, with one or two backslashes (JSON-escaped text) or slashes.
_WIN_HOME = re.compile(
    r"([A-Za-z]:(?:\\\\|\\|/)(?:Users|Documents and Settings)(?:\\\\|\\|/))([^\\/\s\"'<>:;|]+)",
    re.IGNORECASE,
)
_IPV4 = re.compile(
    r"(?<![0-9.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![0-9]|\.[0-9])"
)
# Candidates only; each is confirmed by the ipaddress module.
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?(?:%[0-9A-Za-z_.\-]+)?(?![0-9A-Za-z:]|\.[0-9])"
)

USER = "<user>"
EMAIL = "<email>"
IP = "<ip>"
REDACTED = "<redacted>"


def _ipv6(match):
    text = match.group(0)
    candidate = text.split("%", 1)[0]
    # At least two groups: `a[::2]` in Python code is not an address.
    if len([g for g in candidate.split(":") if g]) < 2:
        return text
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return text
    return IP


class Scrubber:
    """Deny-list strings, emails, home-directory user names and IP addresses out of text."""

    def __init__(self, deny_list=()):
        words = sorted({w for w in deny_list if isinstance(w, str) and w}, key=len, reverse=True)
        self._deny = (
            re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None
        )
        self._home = None
        try:
            home = os.path.expanduser("~")
            user = os.path.basename(home.rstrip("/\\"))
            # A home outside the usual places (/var/lib/alice): its last part is a user name.
            if home and home not in ("/", "~") and user and user not in ("root",):
                self._home = re.compile(re.escape(home) + r"(?=$|[/\\])")
        except Exception:
            self._home = None

    def __call__(self, text):
        if not text:
            return text
        if self._deny is not None:
            text = self._deny.sub(REDACTED, text)
        text = _EMAIL.sub(EMAIL, text)
        text = _WIN_HOME.sub(lambda m: m.group(1) + USER, text)
        text = _UNIX_HOME.sub(lambda m: m.group(1) + USER, text)
        if self._home is not None:
            text = self._home.sub("~", text)
        text = _IPV6.sub(_ipv6, text)
        text = _IPV4.sub(IP, text)
        return text
