"""Hot-swap triggers: model events on Kafka (immediate) and a registry poll (fallback, like TF Serving).

Every worker must see every model event, so the events consumer has no group (a group
would hand each event to one worker only). The registry's champion pointer stays the truth:
an event only says "look now".
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from mode import Service

from nirstream.stream.model_holder import ModelHolder
from nirstream.stream.settings import Settings

log = logging.getLogger(__name__)


class ModelWatcher(Service):
    def __init__(self, settings: Settings, holder: ModelHolder, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.holder = holder
        self.events: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self.events = AIOKafkaConsumer(
            self.settings.topics.models, **self.settings.kafka_client_options(), group_id=None, auto_offset_reset="latest"
        )
        await self.events.start()

    async def on_stop(self) -> None:
        if self.events is not None:
            await self.events.stop()

    @Service.task
    async def _listen(self) -> None:
        while not self.should_stop:
            try:
                batch = await self.events.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("model events unavailable (%s); relying on the registry poll", exc)
                await self.sleep(self.settings.registry_poll_seconds)
                continue
            if any(batch.values()):
                # An event's content is never trusted: it only says "look at the registry now".
                log.info("model event received; checking the registry")
                await self._sync()

    @Service.task
    async def _poll(self) -> None:
        while not self.should_stop:
            await self.sleep(self.settings.registry_poll_seconds)
            await self._sync()

    async def _sync(self) -> None:
        try:
            await self.holder.sync_with_champion()
        except Exception:  # a broken registry must not stop the worker: the current model keeps serving
            log.exception("checking the registry failed; the current model keeps serving")
