"""The Pub/Sub pull subscription a bucket's Cloud Storage notifications reach, read through
google-cloud-pubsub's ``SubscriberClient`` by synchronous pull (the ``gcs-events`` extra); the
notifications are parsed by :mod:`orchestrator.sources.gcs_events`.

A subscription is named by its path, ``projects/<project>/subscriptions/<subscription>``.
Credentials: the source's ``service_account_file``, else Application Default Credentials; when
``PUBSUB_EMULATOR_HOST`` is set, the client talks to that emulator without credentials. Each pulled
message's ack deadline is set to ``visibility_s`` (the subscription's own is often 10 s): unless it is
acknowledged by then, Pub/Sub delivers it again. A delivery's count is Pub/Sub's ``delivery_attempt``,
which only a subscription with a dead-letter policy keeps (1 otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as api
from google.api_core.retry import Retry, if_exception_type
from google.auth import exceptions as auth
from google.cloud.pubsub_v1 import SubscriberClient
from google.oauth2 import service_account

from ..config.discovery import QUEUE_FORMS
from ..errors import NoticeError, SourceError
from .gcs import describe_google_error, key_file_error, service_account_info
from .gcs_events import gcs_notices
from .notices import Message, Notice

if TYPE_CHECKING:
    from ..config.manifest import Settings, SourceConfig

PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
VISIBILITY_S = 300  # the ack deadline of a pulled message: time to plan, submit and record it (600 at most)
PULL_AT_LEAST_S = 1.0  # a pull cannot promise not to wait: an empty subscription answers within this
ACK_MOST = 1000  # ack ids per acknowledge call (a request holds at most 512 KiB)
SUBSCRIBER_NEEDS = "roles/pubsub.subscriber on the subscription"
# a failed call is retried for these, for at most 20 s; not for a deadline (a pull that found nothing)
RETRY = Retry(predicate=if_exception_type(api.ServiceUnavailable, api.InternalServerError, api.Aborted,
                                          api.TooManyRequests),
              initial=0.5, maximum=4.0, multiplier=2.0, timeout=20.0)
_PATH = QUEUE_FORMS["gs"].form  # what a manifest's queue of a gs:// source may be


def subscription_problem(subscription: str) -> str | None:
    """What is wrong with a subscription's path, or None."""
    if _PATH.match(subscription):
        return None
    return "expected projects/<project>/subscriptions/<subscription> (a subscription name is 3 to 255 " \
           "letters, digits and - _ . ~ + %, starting with a letter)"


def make_gcs_queue(subscription: str, source: SourceConfig, settings: Settings) -> GcsEventQueue:
    """The pull subscription of a manifest's GCS source, with its credentials (see the module
    docstring)."""
    label = f"subscription {subscription}"
    problem = subscription_problem(subscription)
    if problem is not None:
        raise SourceError(f"{label}: {problem}")
    credentials = None
    if source.service_account_file is not None:
        try:
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                service_account_info(source.service_account_file), scopes=[PUBSUB_SCOPE])
        except (ValueError, OSError) as exc:
            raise key_file_error(source, exc) from exc
    try:
        client = SubscriberClient(credentials=credentials)
    except auth.GoogleAuthError as exc:
        raise SourceError(f"{label}: {describe_google_error(exc, use='Pub/Sub', needs=SUBSCRIBER_NEEDS)}") \
            from exc
    return GcsEventQueue(client, subscription=subscription, bucket=source.bucket)


class GcsEventQueue:
    """A pull subscription of one GCS source's notifications
    (:class:`~orchestrator.sources.notices.EventQueue`)."""

    def __init__(self, client: SubscriberClient, *, subscription: str, bucket: str,
                 visibility_s: int = VISIBILITY_S, retry: Retry = RETRY) -> None:
        self.client = client
        self.subscription = subscription
        self.bucket = bucket
        self.label = f"subscription {subscription}"
        self.visibility_s = visibility_s
        self.retry = retry

    def receive(self, most: int, wait_s: float) -> list[Message]:
        try:
            reply = self.client.pull(request={"subscription": self.subscription, "max_messages": most},
                                     timeout=max(wait_s, PULL_AT_LEAST_S), retry=self.retry)
        except api.DeadlineExceeded:
            return []  # nothing came in time
        except (api.GoogleAPICallError, api.RetryError) as exc:
            raise SourceError(f"{self.label}: cannot receive: {self._describe(exc)}") from exc
        received = [Message(r.message.message_id, r.ack_id, r.message.data.decode("utf-8", "replace"),
                            dict(r.message.attributes), r.delivery_attempt or 1)
                    for r in reply.received_messages]
        if received:
            self._call("extend the ack deadline of", "modify_ack_deadline", received,
                       ack_deadline_seconds=self.visibility_s)
        return received

    def delete(self, messages: Sequence[Message]) -> None:
        for start in range(0, len(messages), ACK_MOST):
            self._call("acknowledge", "acknowledge", messages[start:start + ACK_MOST])

    def notices(self, message: Message) -> list[Notice]:
        try:
            return gcs_notices(message.body, message.attributes, bucket=self.bucket)
        except NoticeError as exc:
            raise NoticeError(f"{self.label}: message {message.id}: {exc}") from None

    def _call(self, what: str, method: str, messages: Sequence[Message], **request: Any) -> None:
        """One call over the ack ids of ``messages``, its error turned into a :class:`SourceError`."""
        try:
            getattr(self.client, method)(request={"subscription": self.subscription,
                                                  "ack_ids": [m.receipt for m in messages], **request},
                                         retry=self.retry)
        except (api.GoogleAPICallError, api.RetryError) as exc:
            raise SourceError(f"{self.label}: cannot {what} {len(messages)} message(s): "
                              f"{self._describe(exc)}") from exc

    def _describe(self, exc: BaseException) -> str:
        cause = exc.cause if isinstance(exc, api.RetryError) else exc
        if isinstance(cause, api.ServiceUnavailable):
            return f"cannot reach Pub/Sub ({self.client.api_endpoint})"
        return describe_google_error(exc, missing="subscription", use="Pub/Sub", needs=SUBSCRIBER_NEEDS)
