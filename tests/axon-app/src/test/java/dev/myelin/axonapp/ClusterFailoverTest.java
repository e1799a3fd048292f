package dev.myelin.axonapp;

import com.fasterxml.jackson.databind.JsonNode;
import dev.myelin.axonapp.Api.CardCount;
import dev.myelin.axonapp.Api.CardRedeemedEvent;
import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.CountCardsQuery;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.GiftCardApp.LoadedCard;
import dev.myelin.axonapp.ProjectionDatabase.Handled;
import dev.myelin.axonapp.RpcRecorder.Call;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.LogCapture;
import dev.myelin.axonapp.support.MyelinCluster;
import dev.myelin.axonapp.support.MyelinServer;
import dev.myelin.axonapp.support.Store;
import io.axoniq.axonserver.grpc.event.Event;
import org.axonframework.messaging.responsetypes.ResponseTypes;
import org.axonframework.queryhandling.SubscriptionQueryResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A 3-node Myelin cluster under a running application, and the leader crashes.
 * <ol>
 *     <li>Three {@code myelin} processes form a Raft cluster (autocluster); the test waits until all are healthy
 *     and agree on a leader.</li>
 *     <li>The application gets all three as routing servers, a <em>follower first</em>: the connector asks that
 *     follower ({@code GetPlatformServer}), is sent to the leader, and opens its streams there (proved with the
 *     {@code host:port} each recorded gRPC call went to).</li>
 *     <li>The gift-card flow runs: commands through {@code CommandService.Dispatch}, a snapshotted aggregate,
 *     projections, point-to-point and scatter-gather queries.</li>
 *     <li>The leader is killed (SIGKILL). Commands keep being sent, each retried for up to 30 s; the connector has
 *     to reconnect by itself (the two survivors elect a leader; a follower redirects or asks the client to
 *     reconnect). Failures during the failover are counted and printed.</li>
 *     <li>After the failover: the application is on the new leader, aggregates written before the crash load
 *     with all their events (and the snapshot), no acknowledged command is lost or stored twice, projections,
 *     queries and subscription queries work, and the tracking processor saw every event exactly once.</li>
 * </ol>
 */
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class ClusterFailoverTest {

    private static final Logger log = LoggerFactory.getLogger(ClusterFailoverTest.class);
    /** How long one command may keep failing during the failover before the test gives up. */
    private static final Duration COMMAND_RETRY = Duration.ofSeconds(30);
    private static final String PLATFORM_STREAM = "PlatformService/OpenStream";

    /** One failed attempt during the failover. */
    private record Failure(long msAfterKill, String command, String error) {

        @Override
        public String toString() {
            return "+" + msAfterKill + " ms " + command + ": " + error;
        }
    }

    @Test
    void applicationIsRedirectedToTheLeaderAndSurvivesItsCrash() throws Exception {
        long testStart = System.nanoTime();
        try (MyelinCluster cluster = MyelinCluster.start("ClusterFailoverTest", 3, Duration.ofSeconds(60))) {
            MyelinServer leader = cluster.awaitAgreedLeader(Duration.ofSeconds(10));
            List<MyelinServer> followers = cluster.others(leader);
            log.info("cluster formed in {} ms: {}", ms(testStart), cluster.healthSummary());
            // a follower listed first. The connector shuffles its routing servers before asking one
            // (AxonServerManagedChannel.connectChannel), so which node it asks first is random; a probe instance
            // that knows only a follower proves the redirect every time.
            String servers = String.join(",", MyelinCluster.address(followers.get(0)),
                                         MyelinCluster.address(leader), MyelinCluster.address(followers.get(1)));
            GiftCardApp app = null;
            Instant killedAt = null;
            try {
                GiftCardApp probe = GiftCardApp.start(cluster.appSettings(MyelinCluster.address(followers.get(0)))
                                                             .componentName("redirect-probe")
                                                             .instanceName("redirect-probe")
                                                             .projections(false));
                try {
                    assertEquals(MyelinCluster.address(followers.get(0)) + " redirected", connectedVia(probe, leader),
                                 "probe with only a follower as routing server");
                } catch (Throwable e) {
                    printCalls(probe); // the cluster is reported below
                    throw e;
                } finally {
                    probe.shutdown();
                }
                app = GiftCardApp.start(cluster.appSettings(servers).instanceName("failover-app"));
                log.info("application with routing servers {} connected: {}", servers, connectedVia(app, leader));

                // --- the gift-card flow on the healthy cluster
                String big = UUID.randomUUID().toString();  // snapshotted before the crash
                String during = UUID.randomUUID().toString(); // redeemed while the leader is gone
                List<String> small = new ArrayList<>();
                app.commandGateway().sendAndWait(new IssueCardCommand(big, 1000), 10, TimeUnit.SECONDS);
                for (int i = 1; i <= 14; i++) {
                    RedemptionReceipt receipt = app.commandGateway().sendAndWait(new RedeemCardCommand(big, 10), 10,
                                                                                 TimeUnit.SECONDS);
                    assertEquals(1000 - 10 * i, receipt.remaining(), "receipt of redemption " + i);
                    assertEquals(i, receipt.sequence());
                }
                app.commandGateway().sendAndWait(new IssueCardCommand(during, 1000), 10, TimeUnit.SECONDS);
                for (int i = 0; i < 4; i++) {
                    String card = UUID.randomUUID().toString();
                    small.add(card);
                    app.commandGateway().sendAndWait(new IssueCardCommand(card, 100), 10, TimeUnit.SECONDS);
                    RedemptionReceipt receipt = app.commandGateway().sendAndWait(
                            new RedeemCardCommand(card, 10 + i), 10, TimeUnit.SECONDS);
                    assertEquals(90 - i, receipt.remaining());
                }
                GiftCardApp a = app;
                Await.until(Duration.ofSeconds(15), "a snapshot of " + big, () -> !Store.snapshots(a, big).isEmpty());
                awaitProjected(app, big, 860, 14, Duration.ofSeconds(20));
                for (int i = 0; i < small.size(); i++) {
                    awaitProjected(app, small.get(i), 90 - i, 1, Duration.ofSeconds(20));
                }
                CardSummary bigAnswer = query(app, big);
                assertEquals(860, bigAnswer.remainingValue());
                assertEquals(14, bigAnswer.redemptions());
                assertTrue(countCards(app) >= 6, "scatter-gather count before the crash");
                log.info("flow on the healthy cluster done after {} ms", ms(testStart));

                // --- the leader crashes
                long lastTokenBefore = Store.lastToken(app);
                killedAt = Instant.now();
                long killed = System.nanoTime();
                leader.kill();
                log.info("killed the leader {}; commands go on", leader);

                List<Failure> failures = new ArrayList<>();
                Map<Long, RedemptionReceipt> duringReceipts = new LinkedHashMap<>(); // by aggregate sequence
                List<String> issuedDuring = new ArrayList<>();
                List<String> failedIssues = new ArrayList<>();
                int redeemAttempts = 0;
                long firstSuccessMs = -1;
                for (int n = 0; n < 12; n++) {
                    long commandStart = System.nanoTime();
                    while (true) {
                        boolean redeem = n % 2 == 0; // the first command after the crash loads a pre-crash aggregate
                        String card = redeem ? during : UUID.randomUUID().toString();
                        String what = redeem ? "redeem " + during.substring(0, 8) : "issue " + card.substring(0, 8);
                        try {
                            if (redeem) {
                                redeemAttempts++;
                                RedemptionReceipt receipt = app.commandGateway().sendAndWait(
                                        new RedeemCardCommand(during, 1), 5, TimeUnit.SECONDS);
                                assertNotNull(receipt, "receipt of " + what);
                                duringReceipts.put(receipt.sequence(), receipt);
                            } else {
                                app.commandGateway().sendAndWait(new IssueCardCommand(card, 50), 5, TimeUnit.SECONDS);
                                issuedDuring.add(card);
                            }
                            if (firstSuccessMs < 0) {
                                firstSuccessMs = ms(killed);
                                log.info("first command after the crash succeeded {} ms after the kill ({} failed "
                                                 + "attempts before)", firstSuccessMs, failures.size());
                            }
                            break;
                        } catch (RuntimeException e) {
                            if (!redeem) {
                                failedIssues.add(card);
                            }
                            failures.add(new Failure(ms(killed), what, describe(e)));
                            if (System.nanoTime() - commandStart > COMMAND_RETRY.toNanos()) {
                                throw new AssertionError("command " + n + " (" + what + ") still failing after "
                                                                 + COMMAND_RETRY.toMillis() + " ms; failures: "
                                                                 + failures, e);
                            }
                            Await.sleep(200);
                        }
                    }
                }
                long commandsBackMs = ms(killed);
                MyelinServer newLeader = cluster.awaitAgreedLeader(Duration.ofSeconds(30));
                assertNotEquals(leader, newLeader, "a survivor leads");
                log.info("failover: first command succeeded {} ms after the kill, 12 commands done after {} ms, "
                                 + "{} failed attempts; new leader {} ({})", firstSuccessMs, commandsBackMs,
                         failures.size(), newLeader.name(), cluster.healthSummary());
                failures.forEach(f -> log.info("  failed during failover: {}", f));
                System.out.println("=== failover: first command succeeded " + firstSuccessMs + " ms after the kill; "
                                           + failures.size() + " failed attempts:");
                failures.forEach(f -> System.out.println("  " + f));
                failures.stream().collect(Collectors.groupingBy(f -> kind(f.error()), LinkedHashMap::new,
                                                                Collectors.toList()))
                        .forEach((kind, list) -> System.out.println(
                                "  " + list.size() + " x " + kind + " (+" + list.get(0).msAfterKill() + " .. +"
                                        + list.get(list.size() - 1).msAfterKill() + " ms)"));

                // the application ends up on the new leader: platform, command and query streams
                GiftCardApp b = app;
                Await.until(Duration.ofSeconds(30), () -> "application connected to the new leader "
                                    + MyelinCluster.address(newLeader) + "; last streams: " + lastStreams(b),
                            () -> onNode(b, newLeader));
                log.info("application streams on the new leader {} ms after the kill: {}", ms(killed),
                         lastStreams(app));
                printReconnect(app, killedAt);

                // --- after the failover: pre-crash aggregates load with all their events
                RedemptionReceipt bigReceipt = app.commandGateway().sendAndWait(new RedeemCardCommand(big, 10), 10,
                                                                                TimeUnit.SECONDS);
                assertEquals(850, bigReceipt.remaining(), "balance of the snapshotted card written before the crash");
                assertEquals(15, bigReceipt.sequence());
                for (int i = 0; i < small.size(); i++) {
                    RedemptionReceipt receipt = app.commandGateway().sendAndWait(
                            new RedeemCardCommand(small.get(i), 5), 10, TimeUnit.SECONDS);
                    assertEquals(85 - i, receipt.remaining(), "balance of pre-crash card " + i);
                    assertEquals(2, receipt.sequence(), "sequence of pre-crash card " + i);
                }
                assertEquals(16, Store.events(app, big).size(), "events of " + big);
                assertFalse(Store.snapshots(app, big).isEmpty(), "the snapshot survived the crash");
                LoadedCard loadedBig = app.loadCard(big);
                assertEquals(850, loadedBig.state().balance());
                assertEquals(15L, loadedBig.version());
                assertTrue(loadedBig.state().eventsSourced() < 16,
                           "loaded from the snapshot: " + loadedBig.state().eventsSourced() + " events sourced");
                for (String card : small) {
                    assertEquals(3, Store.events(app, card).size(), "events of " + card);
                }

                // the card redeemed during the failover: every acknowledged redemption stored at the sequence and
                // with the balance its receipt named; failed attempts were stored at most once
                List<Event> duringEvents = Store.events(app, during);
                int storedRedemptions = duringEvents.size() - 1;
                for (RedemptionReceipt receipt : duringReceipts.values()) {
                    Event stored = duringEvents.get((int) receipt.sequence());
                    assertEquals(CardRedeemedEvent.class.getName(), Store.payloadType(stored));
                    assertEquals(receipt.remaining(), payload(stored).path("remaining").asInt(),
                                 "stored balance at sequence " + receipt.sequence());
                }
                assertTrue(storedRedemptions >= duringReceipts.size() && storedRedemptions <= redeemAttempts,
                           storedRedemptions + " stored redemptions, " + duringReceipts.size() + " acknowledged, "
                                   + redeemAttempts + " attempted");
                LoadedCard loadedDuring = app.loadCard(during);
                assertEquals(1000 - storedRedemptions, loadedDuring.state().balance());
                assertEquals((long) storedRedemptions, loadedDuring.version());
                if (storedRedemptions != duringReceipts.size()) {
                    log.info("{} redemptions of {} were stored without an answer reaching the caller",
                             storedRedemptions - duringReceipts.size(), during);
                }
                for (String card : issuedDuring) {
                    assertEquals(1, Store.events(app, card).size(), "events of acknowledged card " + card);
                }
                for (String card : failedIssues) {
                    assertTrue(Store.events(app, card).size() <= 1, "events of failed card " + card);
                }

                // --- projections and queries after the failover
                awaitProjected(app, big, 850, 15, Duration.ofSeconds(45));
                awaitProjected(app, during, 1000 - storedRedemptions, storedRedemptions, Duration.ofSeconds(45));
                for (int i = 0; i < small.size(); i++) {
                    awaitProjected(app, small.get(i), 85 - i, 2, Duration.ofSeconds(45));
                }
                for (String card : issuedDuring) {
                    awaitProjected(app, card, 50, 0, Duration.ofSeconds(45));
                }
                CardSummary afterBig = query(app, big);
                assertEquals(850, afterBig.remainingValue());
                assertEquals(15, afterBig.redemptions());
                assertEquals(85, query(app, small.get(0)).remainingValue());
                int expectedCards = 6 + issuedDuring.size();
                assertTrue(countCards(app) >= expectedCards, "scatter-gather count after the failover");

                SubscriptionQueryResult<CardSummary, CardSummary> subscription = app.queryGateway().subscriptionQuery(
                        new FindCardQuery(small.get(1)), ResponseTypes.instanceOf(CardSummary.class),
                        ResponseTypes.instanceOf(CardSummary.class));
                try {
                    BlockingQueue<CardSummary> updates = new LinkedBlockingQueue<>();
                    subscription.updates().subscribe(updates::add);
                    CardSummary initial = subscription.initialResult().block(Duration.ofSeconds(10));
                    assertNotNull(initial, "initial result of the subscription query");
                    assertEquals(84, initial.remainingValue());
                    app.commandGateway().sendAndWait(new RedeemCardCommand(small.get(1), 4), 10, TimeUnit.SECONDS);
                    CardSummary update = updates.poll(20, TimeUnit.SECONDS);
                    assertNotNull(update, "subscription update after the failover");
                    assertEquals(80, update.remainingValue());
                } finally {
                    subscription.cancel();
                }

                // the tracking ledger saw every stored event exactly once, across the failover
                long head = Store.lastToken(app);
                assertTrue(head > lastTokenBefore, "events were appended after the crash");
                Set<Long> everyToken = LongStream.rangeClosed(0, head).boxed().collect(Collectors.toSet());
                ProjectionDatabase db = app.database();
                Await.until(Duration.ofSeconds(45), () -> "ledger caught up to " + head,
                            () -> db.handledBy(CardLedger.PROCESSOR).stream().map(Handled::token)
                                    .collect(Collectors.toSet()).containsAll(everyToken));
                List<Handled> ledger = db.handledBy(CardLedger.PROCESSOR);
                assertEquals(ledger.size(), ledger.stream().map(Handled::eventId).distinct().count(),
                             "ledger handled an event twice");

                printConnectorWarnings(killedAt);
                log.info("ClusterFailoverTest done after {} ms", ms(testStart));
            } catch (Throwable e) {
                report(cluster, app, killedAt);
                throw e;
            } finally {
                if (app != null) {
                    app.shutdown();
                }
            }
        }
    }

    /**
     * How the application reached {@code leader}: its first call was {@code GetPlatformServer} to one of its routing
     * servers; a follower answered with the leader's address (same_connection=false), the leader with itself
     * (same_connection=true). Every stream was then opened on the leader.
     *
     * @return "<node> redirected" or "<node> same connection", naming the node that was asked
     */
    private static String connectedVia(GiftCardApp app, MyelinServer leader) {
        List<Call> calls = app.rpc().calls();
        Call first = calls.stream().filter(Call::started).findFirst().orElseThrow();
        assertTrue(first.method().endsWith("PlatformService/GetPlatformServer"), "first call: " + first);
        Call answer = calls.stream().filter(c -> c.isMessage() && c.message().startsWith("< ")
                && c.method().endsWith("GetPlatformServer") && first.authority().equals(c.authority()))
                           .findFirst().orElseThrow(() -> new AssertionError("no answer to " + first));
        boolean askedLeader = MyelinCluster.address(leader).equals(first.authority());
        assertTrue(answer.message().contains("grpc_port: " + leader.grpcPort() + " "),
                   "GetPlatformServer names the leader " + leader + ": " + answer);
        assertEquals(askedLeader, answer.message().contains("same_connection"),
                     "same_connection is set only when the leader itself was asked: " + answer);
        assertTrue(onNode(app, leader), "streams on the leader " + MyelinCluster.address(leader) + ": "
                + lastStreams(app));
        String how = first.authority() + (askedLeader ? " same connection" : " redirected");
        log.info("{}: asked {}, answer {}; streams: {}", app.instanceName(), first.authority(), answer.message(),
                 lastStreams(app));
        return how;
    }

    /** The latest platform, command and query streams went to {@code node}. */
    private static boolean onNode(GiftCardApp app, MyelinServer node) {
        String address = MyelinCluster.address(node);
        return app.connectionManager().isConnected("default") && app.rpc().unacknowledgedSubscriptions().isEmpty()
                && lastStreams(app).values().stream().allMatch(address::equals);
    }

    private static Map<String, String> lastStreams(GiftCardApp app) {
        Map<String, String> last = new LinkedHashMap<>();
        for (String stream : List.of(PLATFORM_STREAM, "CommandService/OpenStream", "QueryService/OpenStream")) {
            List<Call> starts = app.rpc().starts(stream);
            if (!starts.isEmpty()) { // no query stream without query handlers
                last.put(stream, starts.get(starts.size() - 1).authority());
            }
        }
        return last;
    }

    private static void awaitProjected(GiftCardApp app, String card, int remaining, int redemptions,
                                       Duration timeout) {
        Supplier<String> what = () -> "projection of " + card + ": remaining " + remaining + ", " + redemptions
                + " redemptions; have " + app.database().card(card);
        Await.until(timeout, what, () -> app.database().card(card)
                                            .map(c -> c.remainingValue() == remaining
                                                    && c.redemptions() == redemptions).orElse(false));
    }

    private static CardSummary query(GiftCardApp app, String card) throws Exception {
        CardSummary answer = app.queryGateway().query(new FindCardQuery(card), CardSummary.class)
                                .get(10, TimeUnit.SECONDS);
        assertNotNull(answer, "query answer for " + card);
        return answer;
    }

    private static int countCards(GiftCardApp app) {
        List<CardCount> answers = app.queryGateway()
                                     .scatterGather(new CountCardsQuery(), ResponseTypes.instanceOf(CardCount.class),
                                                    10, TimeUnit.SECONDS)
                                     .toList();
        assertEquals(1, answers.size(), "one answer per component: " + answers);
        return answers.get(0).cards();
    }

    private static JsonNode payload(Event event) throws Exception {
        return GiftCardApp.objectMapper().readTree(event.getPayload().getData().toStringUtf8());
    }

    /** What a failure during the failover was about, for the summary. */
    private static String kind(String error) {
        if (error.contains("Forwarding the command to its handler's node failed")) {
            return "AXONIQ-4001: a survivor forwarded the command to the handler registration on the dead node";
        }
        if (error.contains("UNAVAILABLE")) {
            return "UNAVAILABLE: the connector's channel points at the dead node";
        }
        return error.length() > 120 ? error.substring(0, 120) : error;
    }

    private static String describe(Throwable e) {
        StringBuilder text = new StringBuilder(e.getClass().getSimpleName()).append(": ").append(e.getMessage());
        Throwable cause = e.getCause();
        for (int depth = 0; cause != null && cause != e && depth < 3; depth++, cause = cause.getCause()) {
            text.append(" <- ").append(cause.getClass().getSimpleName()).append(": ").append(cause.getMessage());
        }
        String line = text.toString().replace('\n', ' ');
        return line.length() > 400 ? line.substring(0, 400) + "..." : line;
    }

    /**
     * What the connector did after the kill: where it asked for the platform server and what it was told, which
     * streams it opened where, RequestReconnect instructions, and failed command dispatches.
     */
    private static void printReconnect(GiftCardApp app, Instant since) {
        System.out.println("=== reconnect after the kill (" + since + "):");
        app.rpc().calls().stream().filter(c -> !c.at().isBefore(since)).filter(c -> {
            String m = c.method();
            if (m.endsWith("GetPlatformServer")) {
                return true;
            }
            if (c.isMessage()) {
                return c.message().contains("request_reconnect")
                        || (m.endsWith("CommandService/Dispatch") && c.message().contains("error"));
            }
            return m.endsWith("OpenStream") || (m.endsWith("CommandService/Dispatch") && !c.started()
                    && c.code() != io.grpc.Status.Code.OK);
        }).forEach(c -> System.out.println("  " + c));
    }

    private static void printConnectorWarnings(Instant since) {
        List<LogCapture.Entry> warnings = LogCapture.since(since, e -> true);
        System.out.println("=== " + warnings.size() + " WARN/ERROR log entries since the kill:");
        warnings.stream().limit(60).forEach(w -> System.out.println("  " + w));
    }

    private static void printCalls(GiftCardApp app) {
        List<Call> calls = app.rpc().calls();
        System.out.println("=== ClusterFailoverTest failed; gRPC calls of " + app.instanceName() + " (last 400 of "
                                   + calls.size() + ")");
        calls.subList(Math.max(0, calls.size() - 400), calls.size()).forEach(c -> System.out.println("  " + c));
    }

    private static void report(MyelinCluster cluster, GiftCardApp app, Instant killedAt) {
        if (app != null) {
            printCalls(app);
        }
        if (killedAt != null) {
            printConnectorWarnings(killedAt);
        }
        System.out.println("=== cluster: " + cluster.healthSummary() + "\n" + cluster.describe(80));
    }

    private static long ms(long sinceNanos) {
        return (System.nanoTime() - sinceNanos) / 1_000_000;
    }
}
