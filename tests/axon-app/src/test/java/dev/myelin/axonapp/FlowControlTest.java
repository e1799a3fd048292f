package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardAuditedEvent;
import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.ProjectionDatabase.Handled;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.Store;
import org.axonframework.eventhandling.EventMessage;
import org.axonframework.eventhandling.GenericEventMessage;
import org.axonframework.messaging.responsetypes.ResponseTypes;
import org.axonframework.queryhandling.SubscriptionQueryResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Volume through small permit windows (Axon's flow control set to 16 permits, refills of 4): the server must
 * count the permits of the command, query, subscription and tracking streams and honour every refill, or work
 * stalls. Also: a processor that block-lists an event type still catches up.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class FlowControlTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    private static GiftCardApp.Settings smallWindows() {
        return myelin.settings().flowControl(16, 4, 8);
    }

    @Test
    void hundredsOfCommandsAndQueriesThroughSmallPermitWindows() throws Exception {
        GiftCardApp app = myelin.startApp(smallWindows());
        List<String> cards = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            String card = UUID.randomUUID().toString();
            app.commandGateway().sendAndWait(new IssueCardCommand(card, 1000), 10, TimeUnit.SECONDS);
            cards.add(card);
        }
        // 400 commands, 40 per card, up to 40 in flight
        List<CompletableFuture<RedemptionReceipt>> inFlight = new ArrayList<>();
        for (int i = 0; i < 400; i++) {
            inFlight.add(app.commandGateway().send(new RedeemCardCommand(cards.get(i % cards.size()), 1)));
            if (inFlight.size() == 40) {
                CompletableFuture.allOf(inFlight.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
                inFlight.clear();
            }
        }
        CompletableFuture.allOf(inFlight.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
        for (String card : cards) {
            assertEquals(960, app.loadCard(card).state().balance(), "balance of " + card);
        }
        Await.until(Duration.ofSeconds(30), "projection of 400 redemptions",
                    () -> cards.stream().allMatch(c -> app.database().card(c).map(s -> s.remainingValue() == 960)
                                                          .orElse(false)));
        // 200 queries, 20 in flight
        List<CompletableFuture<CardSummary>> queries = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            queries.add(app.queryGateway().query(new FindCardQuery(cards.get(i % cards.size())), CardSummary.class));
            if (queries.size() == 20) {
                for (CompletableFuture<CardSummary> query : queries) {
                    assertEquals(960, query.get(30, TimeUnit.SECONDS).remainingValue());
                }
                queries.clear();
            }
        }
    }

    @Test
    void processorsCatchUpOnThousandsOfEventsThroughSmallPermitWindows() {
        GiftCardApp writer = myelin.startApp(myelin.settings().instanceName("writer").projections(false));
        String batch = UUID.randomUUID().toString();
        List<String> cards = new ArrayList<>();
        for (int round = 0; round < 30; round++) {
            List<EventMessage<?>> audits = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                audits.add(GenericEventMessage.asEventMessage(new CardAuditedEvent(batch, round * 100 + i)));
            }
            writer.eventGateway().publish(audits); // one AppendEvent transaction of 100 events
            String card = UUID.randomUUID().toString();
            writer.localCommandGateway().sendAndWait(new IssueCardCommand(card, 10));
            cards.add(card);
        }
        long head = Store.lastToken(writer);

        GiftCardApp reader = myelin.startApp(smallWindows().instanceName("reader"));
        ProjectionDatabase db = reader.database();
        Set<Long> everyToken = LongStream.rangeClosed(0, head).boxed().collect(Collectors.toSet());
        Await.until(Duration.ofSeconds(60), () -> "the ledger read tokens 0.." + head + ", has "
                            + db.handledBy(CardLedger.PROCESSOR).size(),
                    () -> db.handledBy(CardLedger.PROCESSOR).stream().map(Handled::token).collect(Collectors.toSet())
                            .containsAll(everyToken));
        Await.until(Duration.ofSeconds(60), "the projection has all 30 cards",
                    () -> cards.stream().allMatch(c -> db.card(c).isPresent()));
        Await.sleep(300);

        List<Handled> ledger = db.handledBy(CardLedger.PROCESSOR);
        assertEquals(head + 1, ledger.size(), "the ledger handled each event once");
        List<Integer> audits = ledger.stream().filter(h -> h.payload() instanceof CardAuditedEvent a
                && a.batch().equals(batch)).map(h -> ((CardAuditedEvent) h.payload()).number()).toList();
        assertEquals(3000, audits.size());
        // the projection's processor does not handle CardAuditedEvent: it saw the 30 card events once each
        List<Handled> projection = db.handledBy(CardSummaryProjection.PROCESSOR);
        assertEquals(30, projection.stream().filter(h -> cards.contains(h.aggregateId())).count());
        assertEquals(projection.size(), projection.stream().map(Handled::eventId).distinct().count());
    }

    @Test
    void subscriptionQueryWithASmallBufferReceivesEveryUpdateInOrder() throws Exception {
        GiftCardApp app = myelin.startApp(smallWindows());
        String card = UUID.randomUUID().toString();
        app.commandGateway().sendAndWait(new IssueCardCommand(card, 1000), 10, TimeUnit.SECONDS);
        Await.until(Duration.ofSeconds(15), "projection", () -> app.database().card(card).isPresent());

        SubscriptionQueryResult<CardSummary, CardSummary> subscription = app.queryGateway().subscriptionQuery(
                FindCardQuery.class.getName(), new FindCardQuery(card), ResponseTypes.instanceOf(CardSummary.class),
                ResponseTypes.instanceOf(CardSummary.class), 32);
        try {
            BlockingQueue<CardSummary> updates = new LinkedBlockingQueue<>();
            subscription.updates().subscribe(updates::add);
            assertEquals(1000, subscription.initialResult().block(Duration.ofSeconds(10)).remainingValue());
            for (int i = 1; i <= 200; i++) {
                app.commandGateway().sendAndWait(new RedeemCardCommand(card, 1), 10, TimeUnit.SECONDS);
            }
            for (int i = 1; i <= 200; i++) {
                CardSummary update = updates.poll(10, TimeUnit.SECONDS);
                assertNotNull(update, "update " + i + " of 200");
                assertEquals(1000 - i, update.remainingValue(), "update " + i);
            }
        } finally {
            subscription.cancel();
        }
        Map<String, Long> unimplemented = app.rpc().closedWith(io.grpc.Status.Code.UNIMPLEMENTED).stream()
                                             .collect(Collectors.groupingBy(RpcRecorder.Call::method, Collectors.counting()));
        assertTrue(unimplemented.isEmpty(), unimplemented.toString());
    }
}
