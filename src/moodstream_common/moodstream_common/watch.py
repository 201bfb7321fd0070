"""The layer that watches: what a running system does, checked against its declared policy
(ROS-free; any system that handles sensitive data can use it).

A :class:`PolicyWatcher` is told what the node sees, each kind of observation in its own scope:
who subscribes to the emotion topics (``subscribers``), who publishes per-person emotions
(``output``), where data leaves (``egress``), what is stored and for how long (``storage``), and
whether anything is processed without consent (``consent``). It returns :class:`Flag` s for what
the policy does not allow and keeps the set that holds now; each flag is written to the audit log
once when it appears and once when it clears, so the log tells when misuse started and ended.
Policy and consent changes are recorded with :meth:`PolicyWatcher.record`.

What it cannot catch: anything it is not shown. A subscriber outside the ROS graph (a process
reading the MQTT broker or the database directly), a copy of the data made downstream, or a
retention set inside InfluxDB are beyond it; so is the purpose a person writes down being true.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

from .audit import AuditLog
from .policy import aggregate_only, allowed_consumers

SEVERITY = {"ok": 0, "warn": 1, "error": 2}


@dataclass(frozen=True)
class Flag:
    code: str  # unknown_subscriber, per_person_output, egress_without_tls, retention_beyond_policy, ...
    level: str  # warn or error
    message: str
    subject: str = ""  # what it is about: a node, a URL, a file

    def as_dict(self) -> dict:
        return asdict(self)


def plaintext_off_loopback(url: str) -> bool:
    """An mqtt:// or http:// URL to a host that is not this machine: data crosses a network
    unencrypted."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "http", "tcp", "ws"):
        return False
    host = parsed.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: somewhere on the network


def consumer_allowed(node: str, allowed: Iterable[str]) -> bool:
    """``node`` (fully qualified, ``/ns/name``) against names given bare (``bridge``) or fully
    qualified (``/robot1/bridge``)."""
    bare = node.rsplit("/", 1)[-1]
    return any(name == node or name.lstrip("/") == node.lstrip("/") or ("/" not in name and name == bare)
               for name in allowed)


class PolicyWatcher:
    """Checks observations against ``policy`` (``policy.*`` values); see the module docstring.
    ``audit``: the log, or a function that opens it when the first entry is due (so that a
    system with nothing to record creates no file)."""

    def __init__(self, policy: Mapping, audit: AuditLog | Callable[[], AuditLog] | None = None) -> None:
        self.policy = dict(policy)
        self._audit = audit
        self._scopes: dict[str, dict[tuple[str, str], Flag]] = {}

    @property
    def audit(self) -> AuditLog | None:
        if self._audit is not None and not isinstance(self._audit, AuditLog):
            self._audit = self._audit()
        return self._audit

    # -- checks: each returns the flags it finds, and replaces its scope's flags with them ----------
    def check_subscribers(self, subscribers: Mapping[str, Iterable[str]], own: Iterable[str] = ()) -> list[Flag]:
        """``{topic: [node, ...]}``: every subscriber that ``policy.allowed_consumers`` does not
        list (``own``: this system's nodes that are part of the pipeline)."""
        allowed = allowed_consumers(self.policy)
        flags = []
        if allowed:
            own = set(own)
            for topic, nodes in subscribers.items():
                for node in sorted(set(nodes) - own):
                    if not consumer_allowed(node, allowed):
                        flags.append(Flag("unknown_subscriber", "error",
                                          f"{node} subscribes to {topic}, and policy.allowed_consumers "
                                          f"({', '.join(allowed)}) does not name it", f"{topic} <- {node}"))
        return self.update("subscribers", flags)

    def check_output(self, publishers: Mapping[str, Iterable[str]]) -> list[Flag]:
        """``{topic: [node, ...]}`` of per-person topics (tracks, boxes): any publisher is a flag
        in aggregate mode."""
        flags = []
        if aggregate_only(self.policy):
            for topic, nodes in publishers.items():
                for node in sorted(set(nodes)):
                    flags.append(Flag("per_person_output", "error",
                                      f"{node} publishes per-person emotions on {topic}, and the policy allows "
                                      "aggregates only", f"{topic} -> {node}"))
        return self.update("output", flags)

    def check_egress(self, urls: Iterable[str]) -> list[Flag]:
        flags = [Flag("egress_without_tls", "warn", f"emotions go to {url} unencrypted, across a network", url)
                 for url in urls if plaintext_off_loopback(url)]
        return self.update("egress", flags)

    def check_storage(self, stored: Mapping[str, float]) -> list[Flag]:
        """``{path: retention_days}`` of what is kept: longer than ``policy.retention_days`` is a flag."""
        limit = float(self.policy.get("policy.retention_days", 30.0))
        flags = [Flag("retention_beyond_policy", "error",
                      f"{path} keeps {days:g} days, and policy.retention_days allows {limit:g}: cut to {limit:g}",
                      path)
                 for path, days in stored.items() if days > limit]
        return self.update("storage", flags)

    def check_consent(self, processing: bool, consent: bool) -> list[Flag]:
        flags = []
        if self.policy.get("policy.require_consent", False) and processing and not consent:
            flags.append(Flag("processing_without_consent", "error",
                              "faces are processed although consent has not been given"))
        return self.update("consent", flags)

    # -- the flags that hold now ---------------------------------------------------------------------
    def update(self, scope: str, flags: list[Flag]) -> list[Flag]:
        """Replace ``scope``'s flags; audit the ones that appear and the ones that clear."""
        before = self._scopes.get(scope, {})
        now = {(f.code, f.subject): f for f in flags}
        if now.keys() != before.keys() and self.audit is not None:
            for key in now.keys() - before.keys():
                flag = now[key]
                self.audit.append(f"flag: {flag.code}", level=flag.level, message=flag.message, subject=flag.subject)
            for key in before.keys() - now.keys():
                flag = before[key]
                self.audit.append(f"cleared: {flag.code}", message=flag.message, subject=flag.subject)
        self._scopes[scope] = now
        return flags

    @property
    def flags(self) -> list[Flag]:
        return [flag for scope in self._scopes.values() for flag in scope.values()]

    def level(self) -> str:
        """ok, warn or error: the worst flag's level."""
        return max((f.level for f in self.flags), key=SEVERITY.__getitem__, default="ok")

    def summary(self) -> str:
        """The worst flag's message, and how many more there are."""
        flags = sorted(self.flags, key=lambda f: -SEVERITY[f.level])
        if not flags:
            return ""
        return flags[0].message + (f" (and {len(flags) - 1} more)" if len(flags) > 1 else "")

    def record(self, event: str, **details) -> None:
        """A policy or consent change, in the audit log."""
        if self.audit is not None:
            self.audit.append(event, **details)
