package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardIssuedEvent;
import dev.myelin.axonapp.Api.CardRedeemedEvent;
import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.GiftCardApp.LoadedCard;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.Store;
import io.axoniq.axonserver.grpc.event.Event;
import org.axonframework.commandhandling.gateway.CommandGateway;
import org.axonframework.messaging.responsetypes.ResponseTypes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 1: command → events stored → aggregate loads (with and without snapshot) → projection updated →
 * query answers.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CommandQueryFlowTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    private static final int SNAPSHOT_THRESHOLD = 10;

    /** The whole path through Axon Server: CommandService.Dispatch, event store, QueryService.Query. */
    @Test
    void commandsThroughGatewayAreStoredSourcedProjectedAndQueryable() throws Exception {
        GiftCardApp app = myelin.startApp(myelin.settings());
        CommandGateway commands = app.commandGateway();
        String snapshotted = UUID.randomUUID().toString();
        String small = UUID.randomUUID().toString();

        assertEquals(snapshotted, commands.sendAndWait(new IssueCardCommand(snapshotted, 1000), 10, TimeUnit.SECONDS));
        RedemptionReceipt last = null;
        for (int i = 1; i <= 14; i++) {
            last = commands.sendAndWait(new RedeemCardCommand(snapshotted, 10), 10, TimeUnit.SECONDS);
            assertEquals(1000 - 10 * i, last.remaining(), "receipt after redemption " + i);
            assertEquals(i, last.sequence(), "aggregate sequence after redemption " + i);
        }
        commands.sendAndWait(new IssueCardCommand(small, 50), 10, TimeUnit.SECONDS);
        commands.sendAndWait(new RedeemCardCommand(small, 20), 10, TimeUnit.SECONDS);

        assertEquals(15, Store.events(app, snapshotted).size(), "events stored for the snapshotted card");
        assertEquals(2, Store.events(app, small).size(), "events stored for the small card");
        Await.until(Duration.ofSeconds(10), "a snapshot of " + snapshotted, () -> !Store.snapshots(app, snapshotted).isEmpty());

        // the next command loads the aggregate (from its snapshot) and decides on the right balance
        RedemptionReceipt afterSnapshot = commands.sendAndWait(new RedeemCardCommand(snapshotted, 860), 10, TimeUnit.SECONDS);
        assertEquals(0, afterSnapshot.remaining());
        assertEquals(15, afterSnapshot.sequence());

        Await.until(Duration.ofSeconds(15), "projection of both cards",
                    () -> app.database().card(snapshotted).map(c -> c.redemptions() == 15).orElse(false)
                            && app.database().card(small).map(c -> c.redemptions() == 1).orElse(false));

        CardSummary answer = app.queryGateway().query(new FindCardQuery(snapshotted), CardSummary.class)
                                .get(10, TimeUnit.SECONDS);
        assertNotNull(answer, "query answer");
        assertEquals(1000, answer.initialValue());
        assertEquals(0, answer.remainingValue());
        assertEquals(15, answer.redemptions());
        CardSummary smallAnswer = app.queryGateway()
                                     .query(new FindCardQuery(small), ResponseTypes.instanceOf(CardSummary.class))
                                     .get(10, TimeUnit.SECONDS);
        assertEquals(30, smallAnswer.remainingValue());
    }

    /**
     * The same lifecycle with commands handled on this instance (the connector's local segment, no command
     * routing needed).
     */
    @Test
    void aggregateLoadsFromEventsAndFromSnapshotAndProjectionFollows() {
        GiftCardApp app = myelin.startApp(myelin.settings().snapshotThreshold(SNAPSHOT_THRESHOLD));
        CommandGateway commands = app.localCommandGateway();
        String big = UUID.randomUUID().toString();
        String small = UUID.randomUUID().toString();

        commands.sendAndWait(new IssueCardCommand(big, 1000));
        for (int i = 1; i <= 14; i++) {
            RedemptionReceipt receipt = commands.sendAndWait(new RedeemCardCommand(big, 10));
            assertEquals(1000 - 10 * i, receipt.remaining());
            assertEquals(i, receipt.sequence());
        }
        commands.sendAndWait(new IssueCardCommand(small, 50));
        for (int i = 0; i < 3; i++) {
            commands.sendAndWait(new RedeemCardCommand(small, 5));
        }

        // what Myelin stored: gap-free sequences, payload types as Axon wrote them
        List<Event> stored = Store.events(app, big);
        assertEquals(15, stored.size(), "stored events of " + big);
        for (int i = 0; i < stored.size(); i++) {
            Event event = stored.get(i);
            assertEquals(i, event.getAggregateSequenceNumber(), "sequence of stored event " + i);
            assertEquals("GiftCard", event.getAggregateType());
            assertEquals(big, event.getAggregateIdentifier());
            assertFalse(event.getSnapshot(), "a stored event is not a snapshot");
            assertEquals(i == 0 ? CardIssuedEvent.class.getName() : CardRedeemedEvent.class.getName(),
                         Store.payloadType(event));
        }
        assertEquals(4, Store.events(app, small).size());

        // a snapshot was taken by the trigger and stored
        Await.until(Duration.ofSeconds(10), "a snapshot of " + big, () -> !Store.snapshots(app, big).isEmpty());
        Event snapshot = Store.snapshots(app, big).get(0);
        assertTrue(snapshot.getSnapshot(), "ListAggregateSnapshots returns snapshot=true");
        assertEquals(GiftCard.class.getName(), Store.payloadType(snapshot));
        long snapshotSequence = snapshot.getAggregateSequenceNumber();
        assertTrue(snapshotSequence >= SNAPSHOT_THRESHOLD - 1 && snapshotSequence <= 14,
                   "snapshot sequence " + snapshotSequence);
        assertTrue(Store.snapshots(app, small).isEmpty(), "no snapshot for a card with 4 events");

        // loaded from its snapshot: only the events after it are sourced
        long snapshotCallsBefore = app.rpc().started("EventStore/ListAggregateSnapshots");
        LoadedCard loadedBig = app.loadCard(big);
        assertEquals(860, loadedBig.state().balance());
        assertEquals(14, loadedBig.state().redemptions());
        assertEquals(1000, loadedBig.state().initialValue());
        assertEquals(14L, loadedBig.version());
        assertEquals(14 - snapshotSequence, loadedBig.state().eventsSourced(),
                     "events sourced on top of the snapshot at sequence " + snapshotSequence);
        assertTrue(app.rpc().started("EventStore/ListAggregateSnapshots") > snapshotCallsBefore,
                   "Axon 4.13 loads via ListAggregateSnapshots, then ListAggregateEvents");

        // the one-call read (ListAggregateEvents allow_snapshots=true, what other clients use): snapshot first,
        // then only the events after it
        List<Event> withSnapshot = app.connection().eventChannel().openAggregateStream(big, true).asStream().toList();
        assertTrue(withSnapshot.get(0).getSnapshot(), "first element is the snapshot");
        assertEquals(snapshotSequence, withSnapshot.get(0).getAggregateSequenceNumber());
        assertEquals(14 - snapshotSequence, withSnapshot.size() - 1, "events after the snapshot");
        for (int i = 1; i < withSnapshot.size(); i++) {
            assertEquals(snapshotSequence + i, withSnapshot.get(i).getAggregateSequenceNumber());
            assertFalse(withSnapshot.get(i).getSnapshot());
        }

        // loaded from events only
        LoadedCard loadedSmall = app.loadCard(small);
        assertEquals(35, loadedSmall.state().balance());
        assertEquals(4, loadedSmall.state().eventsSourced(), "all 4 events sourced (no snapshot)");
        assertEquals(3L, loadedSmall.version());

        // the next command decides on state loaded from the snapshot
        RedemptionReceipt more = commands.sendAndWait(new RedeemCardCommand(big, 860));
        assertEquals(0, more.remaining());
        assertEquals(15, more.sequence());

        // projection (pooled streaming processor, 2 segments) and the ledger (tracking, 2 threads)
        Await.until(Duration.ofSeconds(15), "projection of both cards",
                    () -> app.database().card(big).map(c -> c.remainingValue() == 0 && c.redemptions() == 15).orElse(false)
                            && app.database().card(small).map(c -> c.remainingValue() == 35).orElse(false));
        Await.until(Duration.ofSeconds(15), "ledger of both cards",
                    () -> app.database().handledBy(CardLedger.PROCESSOR).stream()
                             .filter(h -> big.equals(h.aggregateId()) || small.equals(h.aggregateId())).count() == 20);
    }
}
