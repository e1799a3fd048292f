package dev.myelin.axonapp;

import org.axonframework.eventhandling.DomainEventMessage;
import org.axonframework.eventhandling.EventMessage;
import org.axonframework.eventhandling.ReplayStatus;
import org.axonframework.eventhandling.TrackingToken;

import java.time.Instant;
import java.util.Map;

final class HandledEvents {

    private HandledEvents() {
    }

    static ProjectionDatabase.Handled of(String processor, InstanceInfo instance, EventMessage<?> message,
                                         TrackingToken token, ReplayStatus replay) {
        String aggregateId = null;
        long sequence = -1;
        if (message instanceof DomainEventMessage<?> domain && domain.getType() != null) {
            aggregateId = domain.getAggregateIdentifier();
            sequence = domain.getSequenceNumber();
        }
        long position = token == null ? -1 : token.position().orElse(-1);
        return new ProjectionDatabase.Handled(processor, instance.instanceName(), message.getIdentifier(),
                                              message.getPayloadType().getName(), aggregateId, sequence, position,
                                              replay.isReplay(), message.getPayload(),
                                              Map.copyOf(message.getMetaData()),
                                              message.getTimestamp(), Instant.now());
    }
}
