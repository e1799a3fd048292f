package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.ProjectionDatabase.Handled;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinServer;
import dev.myelin.axonapp.support.Store;
import io.axoniq.axonserver.grpc.event.Event;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 7: restart Myelin underneath a running application; the connector reconnects and work
 * continues, nothing acknowledged is lost. Each test starts its own Myelin process and restarts it twice:
 * once gracefully (SIGTERM), once as a crash (SIGKILL), each time on the same ports and data directory.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class MyelinRestartTest {

    private static final Logger log = LoggerFactory.getLogger(MyelinRestartTest.class);

    @Test
    void eventStoreWorkContinuesAndNothingAcknowledgedIsLost() throws Exception {
        try (MyelinServer server = MyelinServer.start("MyelinRestartTest-store")) {
            GiftCardApp app = GiftCardApp.start(server.appSettings().instanceName("survivor"));
            List<String> acknowledged = new CopyOnWriteArrayList<>();
            List<String> failed = new CopyOnWriteArrayList<>();
            AtomicBoolean writing = new AtomicBoolean(true);
            Thread writer = new Thread(() -> {
                while (writing.get()) {
                    String card = UUID.randomUUID().toString();
                    try {
                        app.localCommandGateway().sendAndWait(new IssueCardCommand(card, 100));
                        acknowledged.add(card);
                    } catch (RuntimeException e) {
                        failed.add(card);
                        Await.sleep(100);
                    }
                }
            }, "writer");
            try {
                writer.start();
                awaitMore(acknowledged, 20, "before any restart");

                restart(server, MyelinServer::stop, "graceful stop", acknowledged);
                restart(server, MyelinServer::kill, "kill -9", acknowledged);
            } finally {
                writing.set(false);
                writer.join(30_000);
            }
            try {
                log.info("{} appends acknowledged, {} failed while Myelin was down", acknowledged.size(), failed.size());
                // every acknowledged append is stored, exactly once
                for (String card : acknowledged) {
                    List<Event> events = Store.events(app, card);
                    assertEquals(1, events.size(), "stored events of acknowledged card " + card);
                }
                // failed appends were not stored twice either
                for (String card : failed) {
                    assertTrue(Store.events(app, card).size() <= 1, "events of failed card " + card);
                }
                // the tracking processors got every stored event exactly once, across both reconnects
                long head = Store.lastToken(app);
                Set<Long> everyToken = LongStream.rangeClosed(0, head).boxed().collect(Collectors.toSet());
                ProjectionDatabase db = app.database();
                Await.until(Duration.ofSeconds(60), () -> "ledger caught up to " + head + " after the restarts",
                            () -> db.handledBy(CardLedger.PROCESSOR).stream().map(Handled::token)
                                    .collect(Collectors.toSet()).containsAll(everyToken));
                Await.until(Duration.ofSeconds(60), "projection has every acknowledged card",
                            () -> acknowledged.stream().allMatch(c -> db.card(c).isPresent()));
                List<Handled> ledger = db.handledBy(CardLedger.PROCESSOR);
                assertEquals(ledger.size(), ledger.stream().map(Handled::eventId).distinct().count(),
                             "ledger handled an event twice");
                assertEquals(100, app.loadCard(acknowledged.get(acknowledged.size() / 2)).state().balance());
                assertTrue(app.rpc().started("PlatformService/GetPlatformServer") >= 3,
                           "the connector reconnected (GetPlatformServer) after each restart");
            } finally {
                app.shutdown();
            }
        }
    }

    @Test
    void commandsAndQueriesWorkAfterMyelinRestart() throws Exception {
        try (MyelinServer server = MyelinServer.start("MyelinRestartTest-routing")) {
            GiftCardApp app = GiftCardApp.start(server.appSettings().instanceName("routed"));
            try {
                String card = UUID.randomUUID().toString();
                app.commandGateway().sendAndWait(new IssueCardCommand(card, 100), 10, TimeUnit.SECONDS);

                int redeemed = 0;
                for (Consumer<MyelinServer> stop : List.<Consumer<MyelinServer>>of(MyelinServer::stop,
                                                                                    MyelinServer::kill)) {
                    stop.accept(server);
                    server.restart();
                    long started = System.nanoTime();
                    RedemptionReceipt receipt = retry(Duration.ofSeconds(45), () -> app.commandGateway().sendAndWait(
                            new RedeemCardCommand(card, 10), 5, TimeUnit.SECONDS));
                    redeemed++;
                    log.info("first routed command after restart {} succeeded after {} ms", server.restarts(),
                             (System.nanoTime() - started) / 1_000_000);
                    assertEquals(100 - 10 * redeemed, receipt.remaining());
                    int expected = 100 - 10 * redeemed;
                    Await.until(Duration.ofSeconds(60), "projection after restart " + server.restarts(),
                                () -> app.database().card(card).map(c -> c.remainingValue() == expected).orElse(false));
                    CardSummary answer = retry(Duration.ofSeconds(30), () -> app.queryGateway().query(
                            new FindCardQuery(card), CardSummary.class).get(5, TimeUnit.SECONDS));
                    assertNotNull(answer);
                    assertEquals(expected, answer.remainingValue());
                }
            } finally {
                app.shutdown();
            }
        }
    }

    private static void restart(MyelinServer server, Consumer<MyelinServer> stop, String how,
                                List<String> acknowledged) {
        int before = acknowledged.size();
        stop.accept(server);
        log.info("{}: Myelin stopped with {} acknowledged appends", how, before);
        Await.sleep(500);
        server.restart();
        long started = System.nanoTime();
        awaitMore(acknowledged, acknowledged.size() + 1, "first append after " + how);
        log.info("{}: first acknowledged append {} ms after Myelin was healthy again", how,
                 (System.nanoTime() - started) / 1_000_000);
        awaitMore(acknowledged, acknowledged.size() + 20, "appends after " + how);
    }

    private static void awaitMore(List<String> acknowledged, int atLeast, String what) {
        Await.until(Duration.ofSeconds(45), () -> what + ": " + atLeast + " acknowledged appends, have "
                + acknowledged.size(), () -> acknowledged.size() >= atLeast);
    }

    private interface Call<T> {
        T call() throws Exception;
    }

    private static <T> T retry(Duration timeout, Call<T> call) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            try {
                return call.call();
            } catch (Exception e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                log.info("retrying after {}", e.toString());
                Await.sleep(250);
            }
        }
    }
}
