package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardIssuedEvent;
import dev.myelin.axonapp.Api.CardRedeemedEvent;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.Store;
import io.axoniq.axonserver.grpc.event.Event;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.axonframework.axonserver.connector.event.util.GrpcExceptionParser;
import org.axonframework.commandhandling.CommandMessage;
import org.axonframework.commandhandling.GenericCommandMessage;
import org.axonframework.messaging.MetaData;
import org.axonframework.modelling.command.ConcurrencyException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Issue bullet 5: two instances load and modify one aggregate at once; one succeeds, the other gets Axon's
 * concurrency failure, no event is lost or duplicated.
 * <p>
 * Both instances handle the command themselves (the connector's local segment: that is what runs on the node a
 * command is routed to); a prepare-commit hook holds each unit of work until both have loaded the aggregate and
 * applied their event, so both append the same sequence number and Myelin's sequence check decides.
 * <p>
 * What Axon 4.13.0 surfaces: {@code AxonServerEventStore} rethrows the append call's failure as is, a
 * {@code StatusRuntimeException} with status OUT_OF_RANGE and trailer {@code axoniq-errorcode: AXONIQ-2000};
 * Axon's own reading of that error ({@code GrpcExceptionParser}, {@code ErrorCode.CONCURRENCY_EXCEPTION}) is
 * {@link ConcurrencyException}. (Routed through Axon Server, the caller gets it wrapped in a
 * {@code CommandExecutionException}.)
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ConcurrencyConflictTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    private static final Metadata.Key<String> ERROR_CODE = Metadata.Key.of("axoniq-errorcode",
                                                                            Metadata.ASCII_STRING_MARSHALLER);

    @Test
    void concurrentModificationOnTwoInstancesOneWinsOneGetsConcurrencyError() throws Exception {
        GiftCardApp a = myelin.startApp(myelin.settings().instanceName("node-a"));
        GiftCardApp b = myelin.startApp(myelin.settings().instanceName("node-b").projections(false));
        String card = UUID.randomUUID().toString();
        a.localCommandGateway().sendAndWait(new IssueCardCommand(card, 100));
        a.localCommandGateway().sendAndWait(new RedeemCardCommand(card, 10));

        List<Outcome> outcomes = race(a, b, "modify",
                                      new RedeemCardCommand(card, 30), new RedeemCardCommand(card, 40));
        Outcome winner = single(outcomes, true);
        Outcome loser = single(outcomes, false);
        assertConflict(loser.failure, card);

        int won = ((RedeemCardCommand) winner.command).amount();
        RedemptionReceipt receipt = (RedemptionReceipt) winner.result;
        assertEquals(90 - won, receipt.remaining());
        assertEquals(2, receipt.sequence());

        // exactly the winner's event was stored, gap-free
        List<Event> stored = Store.events(a, card);
        assertEquals(3, stored.size(), "events of " + card);
        for (int i = 0; i < 3; i++) {
            assertEquals(i, stored.get(i).getAggregateSequenceNumber());
        }
        assertEquals(90 - won, a.loadCard(card).state().balance(), "balance loaded by node-a");
        assertEquals(90 - won, b.loadCard(card).state().balance(), "balance loaded by node-b");

        // what Axon users do on a ConcurrencyException: retry; it now succeeds on top of the winner's event
        RedemptionReceipt retried = loser.app.localCommandGateway().sendAndWait(loser.command);
        assertEquals(3, retried.sequence());
        assertEquals(90 - 30 - 40, retried.remaining());
        assertEquals(4, Store.events(a, card).size());

        // the event processors see every stored event exactly once
        Await.until(Duration.ofSeconds(15), "ledger has the 4 events of " + card,
                    () -> a.database().handledBy(CardLedger.PROCESSOR).stream()
                           .filter(h -> card.equals(h.aggregateId())).count() >= 4);
        Await.sleep(300);
        List<Long> sequences = a.database().handledBy(CardLedger.PROCESSOR).stream()
                                .filter(h -> card.equals(h.aggregateId())).map(ProjectionDatabase.Handled::sequence)
                                .toList();
        assertEquals(List.of(0L, 1L, 2L, 3L), sequences, "ledger, in order, no duplicates");
        Await.until(Duration.ofSeconds(15), "projection balance",
                    () -> a.database().card(card).map(c -> c.remainingValue() == 20).orElse(false));
    }

    @Test
    void concurrentCreationOfOneAggregateOneWinsOneGetsConcurrencyError() throws Exception {
        GiftCardApp a = myelin.startApp(myelin.settings().instanceName("node-a").projections(false));
        GiftCardApp b = myelin.startApp(myelin.settings().instanceName("node-b").projections(false));
        String card = UUID.randomUUID().toString();

        List<Outcome> outcomes = race(a, b, "create", new IssueCardCommand(card, 111), new IssueCardCommand(card, 222));
        Outcome winner = single(outcomes, true);
        Outcome loser = single(outcomes, false);
        assertConflict(loser.failure, card);

        List<Event> stored = Store.events(a, card);
        assertEquals(1, stored.size(), "events of " + card);
        assertEquals(0, stored.get(0).getAggregateSequenceNumber());
        assertEquals(CardIssuedEvent.class.getName(), Store.payloadType(stored.get(0)));
        assertEquals(((IssueCardCommand) winner.command).amount(), a.loadCard(card).state().initialValue());
    }

    private record Outcome(GiftCardApp app, Object command, Object result, Throwable failure) {
    }

    /** Sends one command on each instance; both units of work wait for each other before committing. */
    private static List<Outcome> race(GiftCardApp a, GiftCardApp b, String hook, Object commandA, Object commandB)
            throws InterruptedException {
        CyclicBarrier bothLoaded = new CyclicBarrier(2);
        Runnable await = () -> {
            try {
                bothLoaded.await(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                throw new IllegalStateException("the other instance did not reach commit", e);
            }
        };
        a.onPrepareCommit(hook, await);
        b.onPrepareCommit(hook, await);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<Object> fa = pool.submit(() -> a.localCommandGateway().sendAndWait(withHook(commandA, hook)));
            Future<Object> fb = pool.submit(() -> b.localCommandGateway().sendAndWait(withHook(commandB, hook)));
            List<Outcome> outcomes = new ArrayList<>();
            outcomes.add(outcome(a, commandA, fa));
            outcomes.add(outcome(b, commandB, fb));
            return outcomes;
        } finally {
            pool.shutdownNow();
        }
    }

    private static CommandMessage<Object> withHook(Object command, String hook) {
        return GenericCommandMessage.asCommandMessage(command).withMetaData(MetaData.with(GiftCardApp.COMMIT_HOOK, hook));
    }

    private static Outcome outcome(GiftCardApp app, Object command, Future<Object> future) throws InterruptedException {
        try {
            return new Outcome(app, command, future.get(30, TimeUnit.SECONDS), null);
        } catch (ExecutionException e) {
            return new Outcome(app, command, null, e.getCause());
        } catch (java.util.concurrent.TimeoutException e) {
            throw new AssertionError("command on " + app.instanceName() + " did not finish", e);
        }
    }

    private static Outcome single(List<Outcome> outcomes, boolean succeeded) {
        List<Outcome> matching = outcomes.stream().filter(o -> (o.failure == null) == succeeded).toList();
        if (matching.size() != 1) {
            fail("expected exactly one " + (succeeded ? "success" : "failure") + ", got " + outcomes);
        }
        return matching.get(0);
    }

    private static void assertConflict(Throwable failure, String card) {
        StatusRuntimeException status = null;
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (t instanceof StatusRuntimeException s) {
                status = s;
                break;
            }
        }
        assertNotNull(status, "a gRPC status in the failure chain of " + failure);
        assertEquals(Status.Code.OUT_OF_RANGE, status.getStatus().getCode(), "status of " + status);
        Metadata trailers = Status.trailersFromThrowable(status);
        assertNotNull(trailers, "trailers of " + status);
        assertEquals("AXONIQ-2000", trailers.get(ERROR_CODE), "axoniq-errorcode trailer");
        String description = status.getStatus().getDescription();
        assertNotNull(description);
        assertEquals(true, description.contains(card), "description names the aggregate: " + description);
        assertInstanceOf(ConcurrencyException.class, GrpcExceptionParser.parse(status),
                         "Axon's reading of the server's error");
    }
}
