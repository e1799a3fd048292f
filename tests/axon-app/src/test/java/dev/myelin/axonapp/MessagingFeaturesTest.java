package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardCount;
import dev.myelin.axonapp.Api.CardExpiredEvent;
import dev.myelin.axonapp.Api.CardIssuedEvent;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.ProjectionDatabase.Handled;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.MyelinServer;
import dev.myelin.axonapp.support.Store;
import io.axoniq.axonserver.grpc.MetaDataValue;
import io.axoniq.axonserver.grpc.event.Event;
import org.axonframework.commandhandling.CommandMessage;
import org.axonframework.commandhandling.GenericCommandMessage;
import org.axonframework.eventhandling.DomainEventMessage;
import org.axonframework.eventhandling.GenericEventMessage;
import org.axonframework.eventhandling.scheduling.ScheduleToken;
import org.axonframework.messaging.MetaData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The application's other Axon features on the wire: metadata and correlation data carried on messages, and
 * events scheduled through Axon Server's event scheduler.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class MessagingFeaturesTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    @Test
    void metadataAndCorrelationDataTravelFromRoutedCommandToStoredAndHandledEvents() {
        GiftCardApp app = myelin.startApp(myelin.settings());
        String card = UUID.randomUUID().toString();
        CommandMessage<Object> command = GenericCommandMessage
                .asCommandMessage(new IssueCardCommand(card, 40))
                .withMetaData(MetaData.with("tenant", "acme").and("user", "alice"));
        app.commandGateway().sendAndWait(command, 10, TimeUnit.SECONDS);

        // stored by Myelin as Axon wrote it
        Event stored = Store.events(app, card).get(0);
        Map<String, MetaDataValue> metaData = stored.getMetaDataMap();
        assertEquals("acme", metaData.get("tenant").getTextValue(), "correlation data 'tenant': " + metaData);
        assertEquals(command.getIdentifier(), metaData.get("correlationId").getTextValue(), "correlationId");
        assertEquals(command.getIdentifier(), metaData.get("traceId").getTextValue(), "traceId");
        assertFalse(metaData.containsKey("user"), "'user' is not correlation data: " + metaData);

        // read back through Axon's event store
        DomainEventMessage<?> event = app.eventStore().readEvents(card).next();
        assertEquals(CardIssuedEvent.class, event.getPayloadType());
        assertEquals("acme", event.getMetaData().get("tenant"));
        assertEquals(command.getIdentifier(), event.getMetaData().get("correlationId"));

        // and as the processors see it
        Await.until(Duration.ofSeconds(15), "projection of " + card, () -> app.database().card(card).isPresent());
        assertEquals("acme", app.database().card(card).orElseThrow().tenant());
    }

    @Test
    void metadataValuesKeepTheirTypes() {
        GiftCardApp app = myelin.startApp(myelin.settings());
        String marker = UUID.randomUUID().toString();
        MetaData metaData = MetaData.with("text", "héllo ✓")
                                    .and("number", 42L)
                                    .and("negative", -7L)
                                    .and("flag", true)
                                    .and("ratio", 2.5d)
                                    .and("object", new CardCount("component", "instance", 3))
                                    .and("marker", marker);
        app.eventGateway().publish(GenericEventMessage.asEventMessage(new CardExpiredEvent("no-such-card"))
                                                      .withMetaData(metaData));
        Await.until(Duration.ofSeconds(15), "the ledger handled the event",
                    () -> app.database().handledBy(CardLedger.PROCESSOR).stream()
                             .anyMatch(h -> marker.equals(h.metaData().get("marker"))));
        Handled handled = app.database().handledBy(CardLedger.PROCESSOR).stream()
                             .filter(h -> marker.equals(h.metaData().get("marker"))).findFirst().orElseThrow();
        assertEquals(metaData, MetaData.from(handled.metaData()), "metadata after the round trip");
        assertEquals(-1, handled.sequence(), "not a domain event");
        assertEquals(null, handled.aggregateId());
    }

    @Test
    void eventScheduledThroughMyelinIsPublishedAtItsTime() {
        GiftCardApp app = myelin.startApp(myelin.settings());
        String card = UUID.randomUUID().toString();
        Instant issued = Instant.now();
        app.localCommandGateway().sendAndWait(new IssueCardCommand(card, 10, 1500));
        Instant due = issued.plusMillis(1500);

        Await.until(Duration.ofSeconds(15), "card " + card + " expired",
                    () -> app.database().card(card).map(Api.CardSummary::expired).orElse(false));
        Handled expired = expiredEvents(app, card).get(0);
        assertFalse(expired.handledAt().isBefore(due), "handled at " + expired.handledAt() + ", due " + due);
        assertTrue(Duration.between(due, expired.handledAt()).toMillis() < 5_000,
                   "handled " + Duration.between(due, expired.handledAt()).toMillis() + " ms after due");
        // Axon Server stamps a scheduled event with its publication time
        assertFalse(expired.timestamp().isBefore(due.minusMillis(200)),
                    "stored timestamp " + expired.timestamp() + ", due " + due);
        Await.sleep(500);
        assertEquals(1, expiredEvents(app, card).size(), "published once");
    }

    @Test
    void cancelledScheduleIsNeverPublishedAndRescheduleReplacesIt() {
        GiftCardApp app = myelin.startApp(myelin.settings());
        String cancelled = UUID.randomUUID().toString();
        String rescheduled = UUID.randomUUID().toString();

        ScheduleToken cancelToken = app.eventScheduler().schedule(Duration.ofMillis(1000), new CardExpiredEvent(cancelled));
        app.eventScheduler().cancelSchedule(cancelToken);

        ScheduleToken far = app.eventScheduler().schedule(Duration.ofMinutes(10), new CardExpiredEvent(rescheduled));
        app.eventScheduler().reschedule(far, Duration.ofMillis(800), new CardExpiredEvent(rescheduled));

        Await.until(Duration.ofSeconds(15), "the rescheduled event",
                    () -> !expiredEvents(app, rescheduled).isEmpty());
        Await.sleep(1500);
        assertEquals(1, expiredEvents(app, rescheduled).size(), "rescheduled event published once");
        assertEquals(List.of(), expiredEvents(app, cancelled), "cancelled event was published");
    }

    /** Schedules are durable: a restart of Myelin between scheduling and the due time does not lose them. */
    @Test
    void scheduledEventSurvivesAMyelinRestart() {
        try (MyelinServer server = MyelinServer.start("MessagingFeaturesTest-schedule")) {
            GiftCardApp app = GiftCardApp.start(server.appSettings());
            try {
                String card = UUID.randomUUID().toString();
                app.eventScheduler().schedule(Duration.ofSeconds(3), new CardExpiredEvent(card));
                server.stop();
                server.restart();
                Await.until(Duration.ofSeconds(45), "the scheduled event after the restart",
                            () -> !expiredEvents(app, card).isEmpty());
                Await.sleep(500);
                assertEquals(1, expiredEvents(app, card).size(), "published once");
            } finally {
                app.shutdown();
            }
        }
    }

    private static List<Handled> expiredEvents(GiftCardApp app, String card) {
        return app.database().handledBy(CardLedger.PROCESSOR).stream()
                  .filter(h -> h.payload() instanceof CardExpiredEvent e && e.cardId().equals(card))
                  .toList();
    }
}
