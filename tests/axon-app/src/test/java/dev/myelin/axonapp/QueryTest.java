package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardCount;
import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.CountCardsQuery;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.UnhandledQuery;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinExtension;
import org.axonframework.messaging.responsetypes.ResponseTypes;
import org.axonframework.queryhandling.NoHandlerForQueryException;
import org.axonframework.queryhandling.SubscriptionQueryResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 2 (subscription query: initial result, then an update per relevant event) and the application's
 * other queries: point-to-point, scatter-gather across components, no handler.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class QueryTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    @Test
    void subscriptionQueryGetsInitialResultThenOneUpdatePerRelevantEvent() throws Exception {
        GiftCardApp app = myelin.startApp(myelin.settings());
        String card = UUID.randomUUID().toString();
        String other = UUID.randomUUID().toString();
        app.commandGateway().sendAndWait(new IssueCardCommand(card, 100), 10, TimeUnit.SECONDS);
        awaitProjected(app, card, 0);

        SubscriptionQueryResult<CardSummary, CardSummary> subscription = app.queryGateway().subscriptionQuery(
                new FindCardQuery(card), ResponseTypes.instanceOf(CardSummary.class),
                ResponseTypes.instanceOf(CardSummary.class));
        try {
            BlockingQueue<CardSummary> updates = new LinkedBlockingQueue<>();
            subscription.updates().subscribe(updates::add);
            CardSummary initial = subscription.initialResult().block(Duration.ofSeconds(10));
            assertNotNull(initial, "initial result");
            assertEquals(100, initial.remainingValue());
            assertEquals(0, initial.redemptions());

            app.commandGateway().sendAndWait(new IssueCardCommand(other, 500), 10, TimeUnit.SECONDS);
            for (int i = 1; i <= 3; i++) {
                app.commandGateway().sendAndWait(new RedeemCardCommand(card, 10), 10, TimeUnit.SECONDS);
                app.commandGateway().sendAndWait(new RedeemCardCommand(other, 1), 10, TimeUnit.SECONDS);
            }
            for (int i = 1; i <= 3; i++) {
                CardSummary update = updates.poll(10, TimeUnit.SECONDS);
                assertNotNull(update, "update " + i);
                assertEquals(card, update.cardId(), "update " + i + " is about the subscribed card");
                assertEquals(100 - 10 * i, update.remainingValue(), "update " + i);
                assertEquals(i, update.redemptions(), "update " + i);
            }
            awaitProjected(app, other, 3);
            Await.sleep(500);
            assertNull(updates.poll(), "no further updates (events of another card are not relevant)");
        } finally {
            subscription.cancel();
        }
    }

    @Test
    void pointToPointQueryIsAnsweredFromTheReadModel() throws Exception {
        GiftCardApp app = myelin.startApp(myelin.settings());
        String card = UUID.randomUUID().toString();
        app.commandGateway().sendAndWait(new IssueCardCommand(card, 70), 10, TimeUnit.SECONDS);
        app.commandGateway().sendAndWait(new RedeemCardCommand(card, 20), 10, TimeUnit.SECONDS);
        awaitProjected(app, card, 1);

        CardSummary answer = app.queryGateway().query(new FindCardQuery(card), CardSummary.class).get(10, TimeUnit.SECONDS);
        assertEquals(new CardSummary(card, 70, 50, 1, false, null, app.instanceName()), answer);
        assertNull(app.queryGateway().query(new FindCardQuery("no-such-card-" + UUID.randomUUID()), CardSummary.class)
                      .get(10, TimeUnit.SECONDS), "a null answer for an unknown card");
    }

    /** Scatter-gather reaches one instance of every component that handles the query. */
    @Test
    void scatterGatherCollectsOneAnswerPerComponent() {
        GiftCardApp app = myelin.startApp(myelin.settings().componentName("giftcard-app"));
        GiftCardApp reporting = myelin.startApp(myelin.settings().componentName("giftcard-reporting"));
        String card = UUID.randomUUID().toString();
        app.commandGateway().sendAndWait(new IssueCardCommand(card, 10), 10, TimeUnit.SECONDS);
        awaitProjected(app, card, 0);
        awaitProjected(reporting, card, 0);

        List<CardCount> answers = app.queryGateway()
                                     .scatterGather(new CountCardsQuery(), ResponseTypes.instanceOf(CardCount.class),
                                                    10, TimeUnit.SECONDS)
                                     .collect(Collectors.toList());
        assertEquals(Set.of("giftcard-app", "giftcard-reporting"),
                     answers.stream().map(CardCount::componentName).collect(Collectors.toSet()),
                     "components that answered: " + answers);
        assertEquals(2, answers.size(), "one answer per component: " + answers);
        answers.forEach(a -> assertTrue(a.cards() >= 1, "cards seen by " + a));
    }

    @Test
    void queryWithoutHandlerFailsWithNoHandlerForQueryException() {
        GiftCardApp app = myelin.startApp(myelin.settings());
        ExecutionException failure = assertThrows(ExecutionException.class, () -> app.queryGateway().query(
                new UnhandledQuery("x"), CardSummary.class).get(10, TimeUnit.SECONDS));
        assertInstanceOf(NoHandlerForQueryException.class, failure.getCause(), "cause: " + failure.getCause());
    }

    static void awaitProjected(GiftCardApp app, String card, int redemptions) {
        Await.until(Duration.ofSeconds(15), app.instanceName() + " projected " + card + " with " + redemptions
                            + " redemptions",
                    () -> app.database().card(card).map(c -> c.redemptions() == redemptions).orElse(false));
    }
}
