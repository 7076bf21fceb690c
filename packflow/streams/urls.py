"""Stream URLs: ``redis://host:port/STREAM`` and ``kafka://host:port[,host:port]/TOPIC``.

A URL names the broker and the stream (or topic); its query string holds client options:
on Redis ``db`` and ``claim_idle_ms`` (how long an entry stays pending with a consumer
before another consumer of the group takes it over), on Kafka any librdkafka property
(``kafka://h:9092/in?session.timeout.ms=6000``). A user and password may be given as
``redis://user:password@host:port/STREAM``; they are never shown in messages.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from packflow.exceptions import StreamError

__all__ = ["StreamURL", "default_consumer", "parse_url"]

Scheme = Literal["redis", "kafka"]
_DEFAULT_PORTS: dict[str, int] = {"redis": 6379, "kafka": 9092}
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_REDIS_OPTIONS = ("claim_idle_ms", "db")


@attrs.frozen
class StreamURL:
    """A parsed stream URL."""

    scheme: Scheme
    #: (host, port) of each broker given (Redis: exactly one).
    hosts: tuple[tuple[str, int], ...]
    #: The stream (Redis) or topic (Kafka).
    name: str
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    #: The query string's options.
    options: Mapping[str, str] = attrs.field(factory=lambda: MappingProxyType({}))

    @property
    def shown(self) -> str:
        """The URL without its password, as messages name it."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{hosts}/{self.name}"


def parse_url(url: str) -> StreamURL:
    """Parse a stream URL.

    Raises
    ------
    StreamError
        Naming what is wrong: the scheme, a host or port, a missing stream or topic
        name, an unknown Redis option.
    """
    if not isinstance(url, str):
        raise StreamError(f"a stream URL must be a string, got {type(url).__name__}", url="?")
    shown = re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise StreamError(
            f"{shown}: unknown scheme {parts.scheme!r}; expected redis://host:port/STREAM or "
            "kafka://host:port[,host:port]/TOPIC",
            url=shown,
        )
    location = parts.netloc.rsplit("@", 1)[-1]
    username = password = None
    if "@" in parts.netloc:
        credentials = parts.netloc.rsplit("@", 1)[0]
        user, _, secret = credentials.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    hosts: list[tuple[str, int]] = []
    for item in location.split(","):
        host, port = _host_port(item, _DEFAULT_PORTS[scheme], shown)
        hosts.append((host, port))
    if scheme == "redis" and len(hosts) != 1:
        raise StreamError(f"{shown}: a Redis URL names one server, got {len(hosts)}", url=shown)
    name = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    noun = "stream" if scheme == "redis" else "topic"
    if not name:
        raise StreamError(f"{shown}: no {noun} name after the host (…/NAME)", url=shown)
    if scheme == "kafka" and not _TOPIC.fullmatch(name):
        raise StreamError(
            f"{shown}: {name!r} is not a Kafka topic name (letters, digits, '.', '_', '-', "
            "at most 249)",
            url=shown,
        )
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "redis":
        from packflow._text import closest

        for key, value in options.items():
            if key not in _REDIS_OPTIONS:
                hint = closest(key, _REDIS_OPTIONS)
                suggestion = f"; did you mean {hint!r}?" if hint else ""
                raise StreamError(
                    f"{shown}: unknown Redis option {key!r} (known: "
                    f"{', '.join(_REDIS_OPTIONS)}){suggestion}",
                    url=shown,
                )
            if not value.isdigit():
                raise StreamError(
                    f"{shown}: option {key} must be a whole number >= 0, got {value!r}", url=shown
                )
    return StreamURL(
        scheme,  # type: ignore[arg-type]
        tuple(hosts),
        name,
        username,
        password,
        MappingProxyType(options),
    )


def _host_port(item: str, default: int, shown: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # an IPv6 address
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise StreamError(f"{shown}: no host in {item!r}", url=shown)
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StreamError(f"{shown}: port {port_text!r} of {host} is not 1 to 65535", url=shown)
    return host, int(port_text)


def default_consumer() -> str:
    """This process's consumer name when none is given: ``host-pid``."""
    return f"{socket.gethostname()}-{os.getpid()}"
