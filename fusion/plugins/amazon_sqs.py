"""The consumer of Amazon's ORDER_CHANGE notifications: an SQS queue, long-polled with boto3.

Amazon sends order notifications only to SQS, unsigned; trust comes from the queue's access
policy (only Amazon's principal may send), so whoever can read the queue is the receiver.
Notifications can arrive twice or out of order: each is handed on once per
``NotificationMetadata.NotificationId`` (a bounded in-process memory here; the durable dedupe is
the ``webhooks`` row unique per (org, store, delivery id) that the handler writes), and a
message is deleted from the queue only after the handler succeeded, so a crash means a
redelivery, never a loss. The Orders API reconciliation (``AmazonClient.fetch_orders``) is the
backup Amazon itself asks for.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fusion.errors import PermanentError
from fusion.plugins.base import (
    ConsumeResult,
    SettingSpec,
    SettingType,
    StoreConnection,
    WebhookEvent,
)

log = logging.getLogger(__name__)

SEEN_LIMIT = 10_000
LONG_POLL_S = 20  # the longest wait SQS allows a receive: an idle queue costs 3 calls a minute

SQS_QUEUE_URL = SettingSpec(
    "sqs_queue_url",
    SettingType.URL,
    "The SQS queue Amazon sends this seller's ORDER_CHANGE notifications to. With it the hub "
    "listens on the queue all the time (consume_order_queue, long polling), so an order is in "
    "within about a second; without it orders arrive only by the 15-minute Orders API pull. The "
    "AWS keys that read it go in the store's credentials (aws_access_key_id, "
    "aws_secret_access_key).",
    destination=True,
)
SQS_ENDPOINT_URL = SettingSpec(
    "sqs_endpoint_url",
    SettingType.URL,
    "The SQS endpoint to call instead of AWS's regional one (a VPC endpoint, a local SQS).",
    destination=True,
)
AWS_REGION = SettingSpec(
    "aws_region",
    SettingType.STRING,
    "The AWS region of the SQS queue.",
    default="us-east-1",
)
SQS_SETTINGS = (SQS_QUEUE_URL, SQS_ENDPOINT_URL, AWS_REGION)


def notification_event(body: bytes) -> WebhookEvent:
    """A WebhookEvent from an SQS message body holding an SP-API notification.

    Raises PermanentError for a body that is not JSON or lacks the notification type or its
    ``NotificationMetadata.NotificationId`` (the dedupe key)."""
    try:
        data = json.loads(body)
        topic = str(data["NotificationType"])
        delivery_id = str(data["NotificationMetadata"]["NotificationId"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"not an SP-API notification: {type(exc).__name__}") from None
    return WebhookEvent(delivery_id=delivery_id, topic=topic, payload=data)


class OrderChangeConsumer:
    """Reads one seller's notification queue and hands each new ORDER_CHANGE to ``handle``.

    ``handle(event)`` must be idempotent per ``event.delivery_id`` (store the delivery once);
    when it raises, the message stays on the queue and comes back after its visibility
    timeout."""

    def __init__(
        self,
        *,
        queue_url: str,
        handle: Callable[[WebhookEvent], None],
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        wait_s: int = 10,
        batch: int = 10,
        visibility_timeout_s: int = 60,
    ) -> None:
        import boto3

        self.queue_url = queue_url
        self.handle = handle
        self.wait_s = max(0, min(20, wait_s))  # SQS allows long polls of at most 20 s
        self.batch = max(1, min(10, batch))  # and at most 10 messages per receive
        self.visibility_timeout_s = visibility_timeout_s
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._sqs: Any = boto3.client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
        )

    @classmethod
    def for_store(
        cls, conn: StoreConnection, handle: Callable[[WebhookEvent], None], **options: Any
    ) -> OrderChangeConsumer:
        """A consumer for an ``amazon_sc`` store's queue (``settings.sqs_queue_url``, optional
        ``sqs_endpoint_url``/``aws_region``, AWS keys in its credentials). Raises
        PermanentError when the store has no queue configured."""
        queue_url = SQS_QUEUE_URL.value(conn.settings)
        if not queue_url:
            raise PermanentError("amazon_sc store has no sqs_queue_url setting")
        key = conn.credentials.get("aws_access_key_id")
        secret = conn.credentials.get("aws_secret_access_key")
        return cls(
            queue_url=str(queue_url),
            handle=handle,
            endpoint_url=SQS_ENDPOINT_URL.value(conn.settings),
            region=str(AWS_REGION.value(conn.settings)),
            access_key_id=str.__str__(key) if key else None,
            secret_access_key=str.__str__(secret) if secret else None,
            **options,
        )

    def poll(self, *, wait_s: int | None = None) -> ConsumeResult:
        """One long poll (``wait_s``, default the consumer's): receive up to ``batch`` messages,
        as soon as there is one, and process each. Never raises for a bad message (it is logged
        and deleted: it can never succeed); boto3 errors reaching the queue itself propagate."""
        result = ConsumeResult()
        wait = self.wait_s if wait_s is None else max(0, min(20, wait_s))
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch,
            WaitTimeSeconds=wait,
            VisibilityTimeout=self.visibility_timeout_s,
        )
        for message in answer.get("Messages", []):
            result.received += 1
            self._process(message, result)
        return result

    def drain(self, *, max_polls: int = 100) -> ConsumeResult:
        """Poll until a receive comes back empty (or ``max_polls``); the totals. Each receive
        waits at most a second: draining is for what is there now (:meth:`listen` waits)."""
        total = ConsumeResult()
        for _ in range(max_polls):
            step = self.poll(wait_s=min(self.wait_s, 1))
            total.add(step)
            if step.received == 0:
                break
        return total

    def listen(
        self, *, seconds: float, between: Callable[[], None] = lambda: None
    ) -> ConsumeResult:
        """Read the queue continuously for ``seconds``: back-to-back long polls, each waiting
        up to ``wait_s`` (at least 1 s, never past the end) and answering as soon as a message
        is there, so a notification is handed on moments after it arrives while an idle queue
        costs one receive per ``wait_s``, never a busy loop. ``between()`` runs before each
        receive (a job's checkpoint; what it raises ends the listening). The totals."""
        total = ConsumeResult()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            between()
            total.add(self.poll(wait_s=max(1, min(self.wait_s, math.ceil(left)))))
        return total

    def _process(self, message: dict[str, Any], result: ConsumeResult) -> None:
        receipt = message["ReceiptHandle"]
        try:
            event = notification_event(message.get("Body", "").encode())
        except PermanentError as exc:
            log.warning("amazon sqs: dropping a message that is not a notification: %s", exc)
            result.invalid += 1
            self._delete(receipt)
            return
        if event.delivery_id in self._seen:
            result.duplicates += 1
            self._delete(receipt)
            return
        try:
            self.handle(event)
        except Exception:
            # Left on the queue: SQS makes it visible again after the visibility timeout.
            log.exception("amazon sqs: handler failed for notification %s", event.delivery_id)
            result.failed += 1
            return
        self._remember(event.delivery_id)
        result.handled += 1
        self._delete(receipt)

    def _remember(self, notification_id: str) -> None:
        self._seen[notification_id] = None
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    def _delete(self, receipt: str) -> None:
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
