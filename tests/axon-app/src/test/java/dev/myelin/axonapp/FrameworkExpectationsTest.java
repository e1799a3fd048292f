package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.RpcRecorder.Call;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.LogCapture;
import dev.myelin.axonapp.support.MyelinExtension;
import io.axoniq.axonserver.connector.ResultStream;
import io.axoniq.axonserver.grpc.admin.EventProcessor;
import io.axoniq.axonserver.grpc.admin.EventProcessorInstance;
import io.axoniq.axonserver.grpc.admin.EventProcessorSegment;
import io.grpc.Status;
import org.axonframework.eventhandling.StreamingEventProcessor;
import org.axonframework.messaging.responsetypes.ResponseTypes;
import org.axonframework.queryhandling.SubscriptionQueryResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 9: Axon Framework's own expectations hold: no warnings from the connector about unsupported
 * calls, heartbeats keep the connection, and the processor status the framework reports reaches Myelin.
 * (Warnings are captured by {@code LogCapture}, a logback appender configured in {@code logback-test.xml}.)
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class FrameworkExpectationsTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    /** The connector, Axon Framework (including its connector module) and gRPC. */
    private static boolean frameworkLogger(LogCapture.Entry entry) {
        return entry.logger().startsWith("io.axoniq") || entry.logger().startsWith("org.axonframework")
                || entry.logger().startsWith("io.grpc");
    }

    /**
     * Every feature the application uses, with fast heartbeats (1 s interval, 1 s timeout), for several
     * heartbeat periods: no call answered UNIMPLEMENTED, no connector warning, no reconnect.
     */
    @Test
    void noConnectorWarningsNoUnsupportedCallsAndHeartbeatsKeepTheConnection() throws Exception {
        Instant start = Instant.now();
        GiftCardApp app = myelin.startApp(myelin.settings().heartbeat(Duration.ofSeconds(1), Duration.ofSeconds(1)));
        String card = UUID.randomUUID().toString();
        app.commandGateway().sendAndWait(new IssueCardCommand(card, 100, 500), 10, TimeUnit.SECONDS);
        for (int i = 0; i < 12; i++) {
            app.commandGateway().sendAndWait(new RedeemCardCommand(card, 1), 10, TimeUnit.SECONDS);
        }
        app.localCommandGateway().sendAndWait(new RedeemCardCommand(card, 1));
        app.loadCard(card);
        Await.until(Duration.ofSeconds(15), "projection", () -> app.database().card(card)
                                                                   .map(c -> c.redemptions() == 13 && c.expired())
                                                                   .orElse(false));
        app.queryGateway().query(new FindCardQuery(card), CardSummary.class).get(10, TimeUnit.SECONDS);
        SubscriptionQueryResult<CardSummary, CardSummary> subscription = app.queryGateway().subscriptionQuery(
                new FindCardQuery(card), ResponseTypes.instanceOf(CardSummary.class),
                ResponseTypes.instanceOf(CardSummary.class));
        subscription.initialResult().block(Duration.ofSeconds(10));
        subscription.cancel();
        for (String name : List.of(CardSummaryProjection.PROCESSOR, CardLedger.PROCESSOR)) {
            StreamingEventProcessor processor = app.processor(name);
            processor.shutDown();
            if (name.equals(CardLedger.PROCESSOR)) {
                processor.resetTokens(source -> source.createTailToken()); // explicitly from the tail (GetFirstToken)
            } else {
                processor.resetTokens(); // Axon's default: a replay up to the current head (GetLastToken)
            }
            processor.start();
        }

        Await.sleep(6_000); // six heartbeat periods, processor reports every 500 ms

        List<Call> unimplemented = app.rpc().closedWith(Status.Code.UNIMPLEMENTED);
        assertEquals(List.of(), unimplemented, "calls Myelin answered UNIMPLEMENTED");
        List<LogCapture.Entry> complaints = LogCapture.since(start, FrameworkExpectationsTest::frameworkLogger);
        assertEquals(List.of(), complaints, "framework/connector warnings and errors");
        assertEquals(1, app.rpc().started("PlatformService/GetPlatformServer"),
                     "GetPlatformServer calls (more than one = the connector reconnected): " + app.rpc().calls());
        assertEquals(1, app.rpc().started("PlatformService/OpenStream"), "platform streams opened");
        assertTrue(app.connectionManager().isConnected("default"));
        Map<String, Long> used = app.rpc().calls().stream().filter(Call::started)
                                    .collect(Collectors.groupingBy(c -> c.method().substring(c.method().lastIndexOf('.') + 1),
                                                                   Collectors.counting()));
        assertTrue(used.keySet().containsAll(Set.of(
                "PlatformService/GetPlatformServer", "PlatformService/OpenStream", "EventStore/AppendEvent",
                "EventStore/ListAggregateEvents", "EventStore/ListAggregateSnapshots", "EventStore/AppendSnapshot",
                "EventStore/ListEvents", "EventStore/GetFirstToken", "EventStore/GetLastToken",
                "EventScheduler/ScheduleEvent", "CommandService/OpenStream",
                "CommandService/Dispatch", "QueryService/OpenStream", "QueryService/Query",
                "QueryService/Subscription")), "RPCs exercised: " + used);
    }

    /**
     * The processor status the framework reports on the platform stream (EventProcessorInfo, every 500 ms) is
     * visible in Myelin, read the way Axon users read it: the connector's admin channel
     * ({@code EventProcessorAdminService.GetEventProcessorsByComponent}).
     */
    @Test
    void processorStatusReportedByTheFrameworkReachesMyelin() throws Exception {
        GiftCardApp app = myelin.startApp(myelin.settings().componentName("status-app"));
        String card = UUID.randomUUID().toString();
        app.localCommandGateway().sendAndWait(new IssueCardCommand(card, 5));
        Await.until(Duration.ofSeconds(15), "projection", () -> app.database().card(card).isPresent());
        Await.sleep(1500); // first report 500 ms after start, then every 500 ms

        List<EventProcessor> processors = new ArrayList<>();
        try (ResultStream<EventProcessor> stream = app.connection().adminChannel().eventProcessorsByComponent("status-app")) {
            EventProcessor next;
            while ((next = stream.nextIfAvailable(5, TimeUnit.SECONDS)) != null) {
                processors.add(next);
            }
            if (stream.getError().isPresent()) {
                throw new AssertionError("GetEventProcessorsByComponent failed: " + stream.getError().get(),
                                         stream.getError().get());
            }
        }
        Map<String, EventProcessor> byName = processors.stream().collect(Collectors.toMap(
                p -> p.getIdentifier().getProcessorName(), p -> p));
        assertEquals(Set.of(CardSummaryProjection.PROCESSOR, CardLedger.PROCESSOR), byName.keySet(),
                     "processors of status-app: " + processors);
        for (EventProcessor processor : byName.values()) {
            assertTrue(processor.getIsStreaming(), processor.toString());
            List<EventProcessorInstance> instances = processor.getClientInstanceList();
            assertEquals(1, instances.size(), processor.toString());
            EventProcessorInstance instance = instances.get(0);
            assertTrue(instance.getClientId().startsWith(app.instanceName()), instance.toString());
            assertTrue(instance.getIsRunning(), instance.toString());
            assertEquals(Set.of(0, 1), instance.getClaimedSegmentList().stream().map(EventProcessorSegment::getId)
                                               .collect(Collectors.toSet()), instance.toString());
            instance.getClaimedSegmentList().forEach(s -> assertEquals(2, s.getOnePartOf(), s.toString()));
        }
    }
}
