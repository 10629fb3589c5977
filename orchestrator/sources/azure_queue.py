"""The Storage Queue an Event Grid subscription delivers a container's blob events to, read through an
``azure.storage.queue.QueueClient`` (the ``azure`` extra); the events are parsed by
:mod:`orchestrator.sources.azure_events`.

A queue is named by its URL, ``https://<account>.queue.core.windows.net/<queue>`` (or an emulator's
``http://host:port/<account>/<queue>``). Credentials, the first that applies: for a queue in the
source's own storage account, the source's ``connection_string`` (its account key or SAS) or its
``sas_token`` (an account SAS that covers the queue service); then ``AZURE_STORAGE_CONNECTION_STRING``
when it names the queue's account; else ``DefaultAzureCredential``. A received message stays invisible
for ``visibility_s`` seconds, then comes back unless it was deleted: the ledger records what a message
caused before it is deleted, so a crash in between costs a redelivery, never an object.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError
from azure.identity import DefaultAzureCredential
from azure.storage.queue import QueueClient

from ..errors import NoticeError, SourceError
from ..redact import shown_url
from .azure import CLIENT_OPTIONS, ENV_CONNECTION_STRING, azure_error_code, describe_azure_error
from .azure_events import azure_notices
from .notices import Message, Notice

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ..config.manifest import Settings, SourceConfig

log = logging.getLogger("orchestrator")

VISIBILITY_S = 300  # a received message is hidden this long: time to plan, submit and record it
POLL_S = 1.0  # a Storage Queue has no long polling: an empty queue is asked again after this long
PAGE_MOST = 32  # the most messages one Get Messages call returns
DELETES_IN_FLIGHT = 8  # delete calls at once (the client keeps 10 connections)
QUEUE_ROLE = ("Storage Queue Data Message Processor on the queue (a SAS token: read and process "
              "permissions on the queue service)")
_HOST_STYLE = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.queue\.")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_QUEUE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# a delete that finds the message gone (deleted already) or received again by someone else since
_STALE = ("MessageNotFound", "PopReceiptMismatch")


def queue_location(url: str) -> tuple[str, str]:
    """The storage account and queue name a queue URL names; raises :class:`SourceError` saying what is
    wrong with it."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    host_style = _HOST_STYLE.match(parts.hostname or "")
    problem = None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problem = "not an https:// URL"
    elif parts.query or parts.fragment:
        problem = "a queue URL takes no query (a SAS token goes in the source's sas_token)"
    elif len(segments) != (1 if host_style else 2) \
            or not (host_style or parts.netloc.rpartition(":")[2].isdigit()):  # an emulator's port
        problem = "expected https://<account>.queue.core.windows.net/<queue> (an emulator: " \
                  "http://host:port/<account>/<queue>)"
    elif not host_style and not _ACCOUNT.match(segments[0]):
        problem = "the account name is 3 to 24 lowercase letters and digits"
    elif not _QUEUE.match(segments[-1]):
        problem = "the queue name is 3 to 63 lowercase letters, digits and single hyphens"
    if problem is not None:
        raise SourceError(f"queue {shown_url(url)}: {problem}")
    return (host_style["account"] if host_style else segments[0]), segments[-1]


def make_azure_queue(url: str, source: SourceConfig, settings: Settings, *,
                     environ: Mapping[str, str] = os.environ,
                     credential: Callable[[], TokenCredential] = DefaultAzureCredential) -> AzureEventQueue:
    """The queue at ``url`` of a manifest's Azure source, with the first credentials that apply (see
    the module docstring); ``credential`` stands in for ``DefaultAzureCredential``."""
    assert source.account is not None
    account, _ = queue_location(url)
    label = f"queue {shown_url(url)}"
    try:
        client = QueueClient.from_queue_url(url, credential=_credential(account, source, environ, credential),
                                            **CLIENT_OPTIONS)
    except ValueError as exc:  # "Token credential is only supported with HTTPS."
        raise SourceError(f"{label}: DefaultAzureCredential needs an https queue URL: set connection_string "
                          f"or sas_token on {source.label}") from exc
    return AzureEventQueue(client, label=label, account=source.account, container=source.bucket)


def _credential(account: str, source: SourceConfig, environ: Mapping[str, str],
                default: Callable[[], TokenCredential]) -> Any:
    if account == source.account and source.connection_string is not None:
        return _connection_string_credential(source.connection_string.reveal(),
                                            f"{source.label}: connection_string")
    if account == source.account and source.sas_token is not None:
        return source.sas_token.reveal().lstrip("?")
    if _settings(environ.get(ENV_CONNECTION_STRING) or "").get("ACCOUNTNAME") == account:
        return _connection_string_credential(environ[ENV_CONNECTION_STRING],
                                            f"{source.label}: {ENV_CONNECTION_STRING}")
    return default()


def _connection_string_credential(value: str, where: str) -> AzureNamedKeyCredential | str:
    """The account key (or SAS) of a connection string; raises :class:`SourceError` naming ``where`` it
    came from, never its value."""
    named = _settings(value)
    if "ACCOUNTNAME" in named and "ACCOUNTKEY" in named:
        return AzureNamedKeyCredential(named["ACCOUNTNAME"], named["ACCOUNTKEY"])
    if "SHAREDACCESSSIGNATURE" in named:
        return named["SHAREDACCESSSIGNATURE"]
    raise SourceError(f"{where} is not a valid Azure Storage connection string: it holds neither AccountName "
                      "and AccountKey nor SharedAccessSignature")


def _settings(connection_string: str) -> dict[str, str]:
    pairs = (part.partition("=") for part in connection_string.split(";") if part.strip())
    return {key.strip().upper(): value for key, eq, value in pairs if eq}


class AzureEventQueue:
    """A Storage Queue of one Azure source's blob events (:class:`~orchestrator.sources.notices.EventQueue`).
    ``clock`` and ``sleep`` pace the polling of an empty queue."""

    def __init__(self, client: QueueClient, *, label: str, account: str, container: str,
                 visibility_s: int = VISIBILITY_S, poll_s: float = POLL_S,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.label = label
        self.account = account
        self.container = container
        self.visibility_s = visibility_s
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep

    def receive(self, most: int, wait_s: float) -> list[Message]:
        deadline = self._clock() + wait_s
        while True:
            received = self._get(most)
            left = deadline - self._clock()
            if received or left <= 0:
                return received
            self._sleep(min(self.poll_s, left))

    def _get(self, most: int) -> list[Message]:
        try:
            return [Message(m.id, m.pop_receipt or "", m.content or "", {}, m.dequeue_count or 1)
                    for m in self.client.receive_messages(messages_per_page=min(most, PAGE_MOST),
                                                          max_messages=most,
                                                          visibility_timeout=self.visibility_s)]
        except AzureError as exc:
            raise SourceError(f"{self.label}: cannot receive: {self._describe(exc)}") from exc

    def delete(self, messages: Sequence[Message]) -> None:
        """Each message is one call (a Storage Queue deletes one at a time): several go at once."""
        if len(messages) <= 1:
            for message in messages:
                self._delete(message)
            return
        with ThreadPoolExecutor(min(DELETES_IN_FLIGHT, len(messages)), "queue-delete") as pool:
            for _ in pool.map(self._delete, messages):  # the first error is raised here
                pass

    def _delete(self, message: Message) -> None:
        try:
            self.client.delete_message(message.id, message.receipt)
        except AzureError as exc:
            if azure_error_code(exc) not in _STALE:
                raise SourceError(f"{self.label}: cannot delete message {message.id}: "
                                  f"{self._describe(exc)}") from exc
            log.info("%s: message %s was deleted or received again since (%s): a later delivery finds it "
                     "recorded", self.label, message.id, azure_error_code(exc))

    def notices(self, message: Message) -> list[Notice]:
        try:
            return azure_notices(message.body, account=self.account, container=self.container)
        except NoticeError as exc:
            raise NoticeError(f"{self.label}: message {message.id}: {exc}") from None

    def _describe(self, exc: AzureError) -> str:
        return describe_azure_error(exc, self.client.url, missing="queue", use="queue", role=QUEUE_ROLE)
