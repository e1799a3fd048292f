package dev.myelin.axonapp.support;

import dev.myelin.axonapp.GiftCardApp;
import io.axoniq.axonserver.grpc.event.Event;

import java.util.List;
import java.util.concurrent.TimeUnit;

/** Raw reads through the connector (what Myelin actually stored), independent of the application's handlers. */
public final class Store {

    private Store() {
    }

    /** Every stored event of the aggregate, no snapshots, in sequence order ({@code ListAggregateEvents}). */
    public static List<Event> events(GiftCardApp app, String aggregateId) {
        return app.connection().eventChannel().openAggregateStream(aggregateId, false).asStream().toList();
    }

    /** Snapshots of the aggregate, newest first ({@code ListAggregateSnapshots}). */
    public static List<Event> snapshots(GiftCardApp app, String aggregateId) {
        return app.connection().eventChannel().loadSnapshots(aggregateId, 0, Long.MAX_VALUE, 100).asStream().toList();
    }

    /** Global index of the last stored event, -1 when empty ({@code GetLastToken}). */
    public static long lastToken(GiftCardApp app) {
        try {
            return app.connection().eventChannel().getLastToken().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("GetLastToken failed", e);
        }
    }

    public static String payloadType(Event event) {
        return event.getPayload().getType();
    }
}
