package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.ProjectionDatabase.Handled;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.Store;
import org.axonframework.eventhandling.StreamingEventProcessor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 6: restart the application; processors resume from their stored tokens without reprocessing;
 * replay from token 0 (reset) processes every event again, in order.
 * <p>
 * Tokens live in a JDBC token store (H2) and the read model in a {@link ProjectionDatabase} that the restarted
 * instance is handed again, as a real deployment keeps both in its database.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class ApplicationRestartTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    private static final List<String> PROCESSORS = List.of(CardSummaryProjection.PROCESSOR, CardLedger.PROCESSOR);

    @Test
    void restartedApplicationResumesFromStoredTokensWithoutReprocessing() {
        GiftCardApp writer = myelin.startApp(myelin.settings().instanceName("writer").projections(false));
        GiftCardApp.Settings projector = myelin.settings().instanceName("projector")
                                               .tokenStoreUrl("jdbc:h2:mem:restart-" + UUID.randomUUID()
                                                                      + ";DB_CLOSE_DELAY=-1");
        ProjectionDatabase db = projector.database();

        GiftCardApp first = myelin.startApp(projector);
        List<String> before = publishCards(writer, 5);
        awaitHandledEverything(db, writer);
        Set<String> handledByFirst = eventIds(db.handled());
        int mark = db.handled().size();
        myelin.stopApp(first);

        List<String> whileDown = publishCards(writer, 4);
        GiftCardApp second = myelin.startApp(projector.copy());
        List<String> afterRestart = publishCards(writer, 2);
        awaitHandledEverything(db, writer);
        Await.sleep(500); // give a wrongly reprocessing processor time to show it

        List<Handled> secondRun = db.handled().subList(mark, db.handled().size());
        for (String processor : PROCESSORS) {
            List<Handled> run = secondRun.stream().filter(h -> h.processor().equals(processor)).toList();
            Set<String> reprocessed = eventIds(run);
            reprocessed.retainAll(handledByFirst);
            assertEquals(Set.of(), reprocessed, processor + " reprocessed events after the restart");
            assertEquals(run.size(), eventIds(run).size(), processor + " handled an event twice: " + run);
            Set<String> cards = run.stream().map(Handled::aggregateId).collect(Collectors.toSet());
            assertTrue(cards.containsAll(whileDown) && cards.containsAll(afterRestart),
                       processor + " handled the cards published while down and after the restart");
            assertTrue(run.stream().noneMatch(h -> before.contains(h.aggregateId())),
                       processor + " handled cards from before the restart again");
            assertTrue(run.stream().noneMatch(Handled::replay), "nothing is a replay");
        }
        // the read model is complete
        for (String card : concat(before, whileDown, afterRestart)) {
            assertEquals(80, db.card(card).orElseThrow().remainingValue(), "read model of " + card);
        }
        assertTrue(second.database() == db, "the restarted instance uses the same read model");
    }

    @Test
    void resetReplaysEveryEventFromTokenZeroInOrder() {
        GiftCardApp app = myelin.startApp(myelin.settings().instanceName("replayer")
                                                 .tokenStoreUrl("jdbc:h2:mem:replay-" + UUID.randomUUID()
                                                                        + ";DB_CLOSE_DELAY=-1"));
        ProjectionDatabase db = app.database();
        List<String> cards = publishCards(app, 6);
        awaitHandledEverything(db, app);
        long head = Store.lastToken(app);
        int mark = db.handled().size();

        for (String name : PROCESSORS) {
            StreamingEventProcessor processor = app.processor(name);
            processor.shutDown();
            if (name.equals(CardLedger.PROCESSOR)) {
                processor.resetTokens(source -> source.createTailToken()); // explicitly from the tail (GetFirstToken)
            } else {
                processor.resetTokens(); // Axon's default: a replay up to the current head (GetLastToken)
            }
            processor.start();
        }
        Set<Long> everyToken = LongStream.rangeClosed(0, head).boxed().collect(Collectors.toSet());
        Await.until(Duration.ofSeconds(30), "the ledger replayed tokens 0.." + head,
                    () -> tokens(replayed(db, mark, CardLedger.PROCESSOR)).equals(everyToken));
        Await.until(Duration.ofSeconds(30), "the projection replayed all " + cards.size() + " cards",
                    () -> cards.stream().allMatch(c -> db.card(c).map(s -> s.remainingValue() == 80).orElse(false)));
        Await.sleep(300);

        List<Handled> ledger = replayed(db, mark, CardLedger.PROCESSOR);
        assertEquals(head + 1, ledger.size(), "the ledger replayed each event once");
        assertTrue(ledger.stream().allMatch(Handled::replay), "replayed events are flagged as replay");
        assertInOrder(ledger);

        List<Handled> projection = replayed(db, mark, CardSummaryProjection.PROCESSOR);
        assertEquals(eventIds(projection).size(), projection.size(), "projection replayed an event twice");
        for (String card : cards) {
            assertEquals(List.of(0L, 1L), projection.stream().filter(h -> card.equals(h.aggregateId()))
                                                        .map(Handled::sequence).toList(),
                         "projection replay of " + card);
        }
        assertInOrder(projection);
    }

    /** A reset to a point in time ({@code GetTokenAt}) replays exactly the events from that instant on. */
    @Test
    void resetToAPointInTimeReplaysOnlyTheLaterEvents() {
        GiftCardApp app = myelin.startApp(myelin.settings().instanceName("time-travel")
                                                 .tokenStoreUrl("jdbc:h2:mem:tokenat-" + UUID.randomUUID()
                                                                        + ";DB_CLOSE_DELAY=-1"));
        ProjectionDatabase db = app.database();
        publishCards(app, 3);
        Await.sleep(200);
        Instant instant = Instant.now();
        Await.sleep(200);
        List<String> later = publishCards(app, 2);
        awaitHandledEverything(db, app);
        Set<String> laterEvents = db.handledBy(CardLedger.PROCESSOR).stream()
                                    .filter(h -> later.contains(h.aggregateId())).map(Handled::eventId)
                                    .collect(Collectors.toSet());
        assertEquals(4, laterEvents.size());
        int mark = db.handled().size();

        StreamingEventProcessor ledger = app.processor(CardLedger.PROCESSOR);
        ledger.shutDown();
        ledger.resetTokens(source -> source.createTokenAt(instant));
        ledger.start();
        Await.until(Duration.ofSeconds(30), "the ledger replayed the 4 later events",
                    () -> eventIds(replayed(db, mark, CardLedger.PROCESSOR)).containsAll(laterEvents));
        Await.sleep(500);
        List<Handled> replay = replayed(db, mark, CardLedger.PROCESSOR);
        assertEquals(laterEvents, eventIds(replay), "replayed from " + instant + ": " + replay);
        assertEquals(4, replay.size(), "each once");
    }

    /** Per aggregate, in sequence order and in token order. */
    private static void assertInOrder(List<Handled> run) {
        Map<String, List<Handled>> byAggregate = run.stream().filter(h -> h.aggregateId() != null)
                                                    .collect(Collectors.groupingBy(Handled::aggregateId));
        byAggregate.forEach((aggregate, events) -> {
            for (int i = 1; i < events.size(); i++) {
                assertTrue(events.get(i).sequence() > events.get(i - 1).sequence()
                                   && events.get(i).token() > events.get(i - 1).token(),
                           "order of " + aggregate + ": " + events);
            }
        });
    }

    /** Issues {@code n} cards of 100 and redeems 20 on each: 2n events. */
    private static List<String> publishCards(GiftCardApp app, int n) {
        List<String> cards = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String card = UUID.randomUUID().toString();
            app.localCommandGateway().sendAndWait(new IssueCardCommand(card, 100));
            app.localCommandGateway().sendAndWait(new RedeemCardCommand(card, 20));
            cards.add(card);
        }
        return cards;
    }

    /** Until both processors have handled every event up to the store's head. */
    private static void awaitHandledEverything(ProjectionDatabase db, GiftCardApp any) {
        long head = Store.lastToken(any);
        Set<Long> everyToken = LongStream.rangeClosed(0, head).boxed().collect(Collectors.toSet());
        Await.until(Duration.ofSeconds(30), () -> "ledger handled tokens 0.." + head + ", has "
                            + tokens(db.handledBy(CardLedger.PROCESSOR)).size(),
                    () -> tokens(db.handledBy(CardLedger.PROCESSOR)).containsAll(everyToken)
                            && db.handledBy(CardSummaryProjection.PROCESSOR).stream().mapToLong(Handled::token).max()
                                 .orElse(-1) >= highestCardToken(db));
    }

    private static long highestCardToken(ProjectionDatabase db) {
        return db.handledBy(CardLedger.PROCESSOR).stream().filter(h -> h.aggregateId() != null)
                 .mapToLong(Handled::token).max().orElse(-1);
    }

    private static List<Handled> replayed(ProjectionDatabase db, int mark, String processor) {
        List<Handled> all = db.handled();
        return all.subList(mark, all.size()).stream().filter(h -> h.processor().equals(processor)).toList();
    }

    private static Set<Long> tokens(List<Handled> handled) {
        return handled.stream().map(Handled::token).collect(Collectors.toSet());
    }

    private static Set<String> eventIds(List<Handled> handled) {
        return handled.stream().map(Handled::eventId).collect(Collectors.toCollection(HashSet::new));
    }

    @SafeVarargs
    private static List<String> concat(List<String>... lists) {
        List<String> all = new ArrayList<>();
        for (List<String> list : lists) {
            all.addAll(list);
        }
        return all;
    }
}
