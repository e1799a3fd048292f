package dev.myelin.axonapp;

import org.axonframework.config.ProcessingGroup;
import org.axonframework.eventhandling.EventHandler;
import org.axonframework.eventhandling.EventMessage;
import org.axonframework.eventhandling.ReplayStatus;
import org.axonframework.eventhandling.TrackingToken;

/**
 * An audit ledger of every event, fed by the tracking processor {@value #PROCESSOR} (2 segments, 2 threads,
 * so two tracking streams).
 */
@ProcessingGroup(CardLedger.PROCESSOR)
public class CardLedger {

    public static final String PROCESSOR = "card-ledger";

    private final ProjectionDatabase database;
    private final InstanceInfo instance;

    public CardLedger(ProjectionDatabase database, InstanceInfo instance) {
        this.database = database;
        this.instance = instance;
    }

    @EventHandler
    public void on(EventMessage<?> message, TrackingToken token, ReplayStatus replay) {
        database.record(HandledEvents.of(PROCESSOR, instance, message, token, replay));
    }
}
